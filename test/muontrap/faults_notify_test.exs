defmodule MuonTrap.FaultsNotifyTest do
  # An sd_notify client that floods its daemon's notification socket for
  # seconds, with state changes, watchdog pings and descriptors: the
  # daemon's mailbox and heap stay bounded (the port coalesces to one
  # message per 10 ms and closes every descriptor that arrives), it keeps
  # answering calls, the watchdog keeps counting the pings, and the last
  # state wins. A flood from outside the containment is dropped. Not
  # async: the watchdog's interval must hold beside the flood, not beside
  # the suite's stress tests too, and the BEAM's descriptors are counted.
  use ExUnit.Case, async: false

  # sd_notify needs Linux (docs/portability.md).
  @moduletag :linux

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, Notify, OSProcess}

  alias MuonTrap.Daemon

  @flood_seconds 3

  # READY=1, then as many datagrams as the socket takes for a few seconds
  # (non-blocking: a full queue drops them here, not in the port), every
  # tenth carrying both ends of a pipe, then a final STATUS.
  @flooder """
  import array
  addr = os.environ["NOTIFY_SOCKET"]
  addr = "\\0" + addr[1:]
  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
  s.setblocking(False)
  s.sendto(b"READY=1", addr)
  fds = array.array("i", os.pipe())
  sent = 0
  end = time.time() + #{@flood_seconds}
  while time.time() < end:
      msg = b"STATUS=%d\\nWATCHDOG=1" % sent
      try:
          if sent % 10 == 0:
              s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0, addr)
          else:
              s.sendto(msg, addr)
          sent += 1
      except BlockingIOError:
          time.sleep(0.0005)
  say("sent %d" % sent)
  s.setblocking(True)
  s.sendto(b"STATUS=done\\nWATCHDOG=1", addr)
  while True:
      notify("WATCHDOG=1")
      time.sleep(0.1)
  """

  # Samples of the daemon (mailbox, heap, a call's latency) and of the
  # port binary (its descriptors) every 20 ms until `until` holds.
  defp sample(daemon, port, until, acc \\ []) do
    {us, _status} = :timer.tc(fn -> Daemon.status(daemon) end)
    info = Process.info(daemon, [:message_queue_len, :total_heap_size])

    acc = [
      {info[:message_queue_len], info[:total_heap_size], div(us, 1000), fd_count(port)} | acc
    ]

    if until.() do
      acc
    else
      Process.sleep(20)
      sample(daemon, port, until, acc)
    end
  end

  defp max_of(samples, i), do: samples |> Enum.map(&elem(&1, i)) |> Enum.max()

  test "a flood from the command: bounded mailbox and heap, calls answered, the last state kept" do
    m = fault_marker()
    fds = fd_count()
    parent = self()
    {python, args} = python(@flooder, m)

    capture_log(fn ->
      {:ok, daemon} =
        Daemon.start_link(python, args,
          ready: :notify,
          watchdog: 1_000,
          log_output: :info,
          logger_fun: &send(parent, {:line, &1})
        )

      port = Daemon.os_pid(daemon)
      port_fds = fd_count(port)
      samples = sample(daemon, port, fn -> Daemon.status(daemon).status_text == "done" end)
      assert_received {:line, "sent " <> sent}

      {queue, heap, call_ms, max_fds} =
        {max_of(samples, 0), max_of(samples, 1), max_of(samples, 2), max_of(samples, 3)}

      assert String.to_integer(sent) > 1_000
      assert queue <= 20
      assert heap < 200_000
      assert call_ms < 2_000
      # Every descriptor that came in a datagram was closed at once.
      assert max_fds <= port_fds + 4
      # The pings in the flood counted: the watchdog never fired.
      assert %{state: :ready} = Daemon.status(daemon)
      GenServer.stop(daemon)
    end)

    assert_nothing_left(m)
    assert_fds_back(fds)
  end

  test "a flood from outside the containment is dropped" do
    m = fault_marker()
    parent = self()
    {python, args} = python("notify(\"READY=1\")\nsay(\"up\")\ntime.sleep(600)\n", m)

    capture_log(fn ->
      {:ok, daemon} =
        Daemon.start_link(python, args,
          ready: :notify,
          log_output: :info,
          logger_fun: &send(parent, {:line, &1})
        )

      assert_receive {:line, "up"}, 15_000
      env = File.read!("/proc/#{command_pid(daemon)}/environ") |> String.split(<<0>>)

      socket =
        Enum.find_value(env, &(match?("NOTIFY_SOCKET=" <> _, &1) && String.slice(&1, 14..-1)))

      {outsider, outsider_args} =
        python(String.replace(@flooder, "while True:", "while False:"), m)

      {out, 0} = System.cmd(outsider, outsider_args, env: [{"NOTIFY_SOCKET", socket}])

      assert out =~ ~r/^sent \d+/
      assert %{state: :ready, status_text: nil} = Daemon.status(daemon)
      {:message_queue_len, queue} = Process.info(daemon, :message_queue_len)
      assert queue <= 2
      GenServer.stop(daemon)
    end)

    assert_nothing_left(m)
  end
end
