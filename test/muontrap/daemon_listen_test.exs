defmodule MuonTrap.DaemonListenTest do
  # Socket activation (`listen_sockets:`) with real servers: Python takes
  # the listeners with socket.fromfd(3, …), as a systemd-activated service
  # does. Connections are served across relaunches, names reach
  # LISTEN_FDNAMES, the command sees only its own descriptors, and the
  # daemon's own copies outlive an owner that closes its socket, but
  # never the daemon.
  #
  # Not async: the BEAM's descriptor count is compared before and after.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Notify, OSProcess}

  alias MuonTrap.Daemon

  # Serves one connection on fd 3: replies with its pid, its start time
  # (ns) and whether fd 3 is non-blocking, then fails.
  @serve_one """
  import select, time
  started = time.time_ns()
  assert os.environ["LISTEN_PID"] == str(os.getpid())
  assert os.environ["LISTEN_FDS"] == "1"
  s = socket.fromfd(3, socket.AF_INET, socket.SOCK_STREAM)
  select.select([s], [], [])
  c, _ = s.accept()
  c.sendall(("%d %d %s\\n" % (os.getpid(), started, not os.get_blocking(3))).encode())
  c.close()
  sys.exit(1)
  """

  # Reports what it was given: the variables, each fd's address, and the
  # descriptors open (listdir's own one is the last opened, left out).
  @report """
  n = int(os.environ["LISTEN_FDS"])
  say("pid_ok %s" % (os.environ["LISTEN_PID"] == str(os.getpid())))
  say("names %s" % os.environ["LISTEN_FDNAMES"])
  for fd in range(3, 3 + n):
      s = socket.socket(fileno=os.dup(fd))
      say("fd %d %s" % (fd, s.getsockname()))
      s.close()
  fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
  say("open %s" % fds[:-1])
  time.sleep(30)
  """

  # Serves one connection on fd 3 with the name it was given, then fails.
  @serve_name """
  import select
  s = socket.fromfd(3, socket.AF_INET, socket.SOCK_STREAM)
  select.select([s], [], [])
  c, _ = s.accept()
  c.sendall((os.environ["LISTEN_FDNAMES"] + "\\n").encode())
  c.close()
  sys.exit(1)
  """

  defp tcp_listener do
    {:ok, socket} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
    {:ok, port} = :inet.port(socket)
    {socket, port}
  end

  defp ask(port) do
    {:ok, c} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false, packet: :line])
    sent_at = System.os_time(:nanosecond)
    {:ok, line} = :gen_tcp.recv(c, 0, 15_000)
    :gen_tcp.close(c)
    [pid, started, nonblocking] = line |> String.trim() |> String.split(" ")

    %{pid: String.to_integer(pid), started: String.to_integer(started), sent_at: sent_at}
    |> Map.put(:nonblocking, nonblocking == "True")
  end

  defp forward(pid \\ self()), do: fn line -> send(pid, {:line, line}) end

  defp beam_fd_count, do: length(Path.wildcard("/proc/#{System.pid()}/fd/*"))

  defp socket_inode(fd), do: File.read_link!("/proc/#{System.pid()}/fd/#{fd}")

  setup do
    Process.flag(:trap_exit, true)
    :ok
  end

  test "two connections in a row, the second made while the command restarts, both served" do
    {socket, port} = tcp_listener()
    m = marker()
    {python, args} = python(@serve_one, m)

    capture_log(fn ->
      opts = [listen_sockets: [socket], relaunch: [retries: 5, delay: 300]]
      {:ok, daemon} = Daemon.start_link(python, args, opts)
      first = ask(port)
      # The first command has exited (it serves once); the next is 300 ms away.
      second = ask(port)

      assert first.pid != second.pid
      assert second.sent_at < second.started, "the second connection waited for the relaunch"
      assert first.nonblocking, "the listener shares the BEAM's non-blocking file description"
      assert Daemon.statistics(daemon).relaunch_count >= 1
      GenServer.stop(daemon)
    end)

    wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "the commands to go")
    :gen_tcp.close(socket)
  end

  test "names reach LISTEN_FDNAMES; the command has fds 0-2 and its listeners only" do
    {tcp1, port1} = tcp_listener()
    {tcp2, port2} = tcp_listener()
    path = Path.join(System.tmp_dir!(), "muontrap_listen_#{marker()}.sock")
    on_exit(fn -> File.rm(path) end)
    {:ok, unix} = :socket.open(:local, :stream)
    :ok = :socket.bind(unix, %{family: :local, path: path})
    :ok = :socket.listen(unix)
    m = marker()
    {python, args} = python(@report, m)

    opts = [
      listen_sockets: [{"http", tcp1}, tcp2, {"admin", unix}],
      logger_fun: forward()
    ]

    {:ok, daemon} = Daemon.start_link(python, args, opts)
    assert_receive {:line, "pid_ok True"}, 15_000
    assert_receive {:line, "names http:unknown:admin"}
    fd3 = "fd 3 ('127.0.0.1', #{port1})"
    fd4 = "fd 4 ('127.0.0.1', #{port2})"
    assert_receive {:line, ^fd3}
    assert_receive {:line, ^fd4}
    assert_receive {:line, "fd 5 " <> unix_name}
    assert unix_name =~ path
    assert_receive {:line, "open [0, 1, 2, 3, 4, 5]"}

    # The port binary keeps none of them.
    {:ok, tcp_fd} = :inet.getfd(tcp1)
    port_fds = Path.wildcard("/proc/#{Daemon.os_pid(daemon)}/fd/*")
    refute Enum.any?(port_fds, &(File.read_link(&1) == {:ok, socket_inode(tcp_fd)}))

    GenServer.stop(daemon)
    wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "the command to go")
    Enum.each([tcp1, tcp2], &:gen_tcp.close/1)
    :socket.close(unix)
  end

  test "the daemon's copies outlive an owner that closes its socket, and end with the daemon" do
    before = beam_fd_count()
    test = self()
    m = marker()
    {python, args} = python(@serve_one, m)

    owner =
      spawn(fn ->
        {socket, port} = tcp_listener()
        send(test, {:listening, socket, port})
        receive do: (:close -> :gen_tcp.close(socket))
        send(test, :closed)
        Process.sleep(:infinity)
      end)

    assert_receive {:listening, socket, port}

    capture_log(fn ->
      opts = [listen_sockets: [{"web", socket}], relaunch: [retries: 5, delay: 50]]
      {:ok, daemon} = Daemon.start_link(python, args, opts)
      send(owner, :close)
      assert_receive :closed
      # Served by the running command, and by the relaunched one.
      first = ask(port)
      second = ask(port)
      assert first.pid != second.pid
      GenServer.stop(daemon)
    end)

    wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "the commands to go")
    Process.exit(owner, :kill)

    wait_until(
      fn -> beam_fd_count() == before end,
      5_000,
      "the BEAM's descriptors to be released"
    )

    assert {:error, :econnrefused} = :gen_tcp.connect({127, 0, 0, 1}, port, [])
  end

  test "a closed, or not listening, socket is refused when the daemon starts" do
    {socket, _port} = tcp_listener()
    :gen_tcp.close(socket)

    assert_raise ArgumentError,
                 ~r/:listen_sockets with value #Port<[\d.]+> \(unknown\) is closed/,
                 fn ->
                   Daemon.start_link("true", [], listen_sockets: [socket])
                 end

    {:ok, udp} = :gen_udp.open(0)

    assert_raise ArgumentError, ~r/\(dns\) is not a listening socket/, fn ->
      Daemon.start_link("true", [], listen_sockets: [{"dns", udp}])
    end

    :gen_udp.close(udp)

    for bad <- [[], [:nope], [{"a:b", udp}], [{"", udp}], :nope] do
      assert_raise ArgumentError, ~r/invalid option :listen_sockets with value/, fn ->
        Daemon.start_link("true", [], listen_sockets: bad)
      end
    end
  end

  @tag timeout: 120_000
  test "40 daemons, half killed at random moments: each listener reaches its own command only" do
    before = beam_fd_count()
    m = marker()
    {python, args} = python(@serve_name, m)

    capture_log(fn ->
      daemons =
        for i <- 1..40 do
          {socket, port} = tcp_listener()
          name = "#{m}d#{i}"
          opts = [listen_sockets: [{name, socket}], relaunch: [retries: 5, delay: 20]]
          {:ok, daemon} = Daemon.start_link(python, args, opts)
          {daemon, socket, port, name}
        end

      {killed, kept} = Enum.split_with(daemons, fn _ -> :rand.uniform(2) == 1 end)

      for {daemon, _, _, _} <- killed do
        Process.sleep(:rand.uniform(5))
        Process.exit(daemon, :kill)
      end

      for {daemon, _socket, port, name} <- kept, _twice <- 1..2 do
        {:ok, c} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false, packet: :line])

        assert :gen_tcp.recv(c, 0, 15_000) == {:ok, name <> "\n"}
        :gen_tcp.close(c)
        assert Process.alive?(daemon)
      end

      Enum.each(kept, fn {daemon, _, _, _} -> GenServer.stop(daemon) end)
      Enum.each(daemons, fn {_, socket, _, _} -> :gen_tcp.close(socket) end)
    end)

    wait_until(fn -> all_pids_matching(m) == [] end, 15_000, "every command to go")

    wait_until(
      fn -> beam_fd_count() == before end,
      5_000,
      "the BEAM's descriptors to be released"
    )
  end
end
