defmodule MuonTrap.SpawnerBeamTest do
  # The resident spawner seen from child BEAMs running MuonTrap from this
  # build (MuonTrap.Test.Faults.start_child_beam/3): the BEAM SIGKILLed
  # with 100 commands in flight leaves nothing (the spawner reads EOF on
  # its request socket, each supervisor on its channel); cmd/3 needs no
  # started application and stopping it stops no command; a burst of
  # 1,000 starts as a non-root user under `ulimit -n 1024` queues instead
  # of failing (SCM_RIGHTS counts descriptors in flight against the
  # sender's RLIMIT_NOFILE, root is exempt).
  use ExUnit.Case, async: true

  import MuonTrap.Test.{Faults, OSProcess, Spawner}

  @moduletag timeout: 300_000

  # Starts `n` commands in flight (running, or starting as the BEAM
  # dies), prints the spawner's pid, then waits to be killed.
  defp in_flight_script(m, n, opts) do
    """
    helper = #{inspect(helper())}
    m = #{inspect(m)}
    opts = #{inspect(opts)}
    {"", 0} = MuonTrap.cmd("true", [], opts)
    IO.puts("spawner \#{MuonTrap.Nif.spawner_pid()}")
    for _ <- 1..#{n}, do: spawn(fn -> MuonTrap.cmd(helper, ["sleep", m], opts) end)
    # Starts still going on when the BEAM dies.
    spawn(fn ->
      Stream.repeatedly(fn -> spawn(fn -> MuonTrap.cmd(helper, ["sleep", m], opts) end) end)
      |> Stream.each(fn _ -> Process.sleep(5) end)
      |> Stream.run()
    end)
    Process.sleep(:infinity)
    """
  end

  defp kill_beam_in_flight(m, opts, before_kill \\ fn -> :ok end) do
    {port, beam} = start_child_beam(in_flight_script(m, 100, opts))
    spawner = String.to_integer(child_line(port, "spawner ", 60_000))
    wait_until(fn -> length(pids_matching(m)) >= 100 end, 60_000, "100 commands to run")
    before_kill.()
    signal(beam, "KILL")
    wait_all_dead([beam], 15_000)
    # The spawner exits on its request socket's EOF, each supervisor on
    # its channel's, each command with its supervisor.
    wait_all_dead([spawner], 15_000)
    assert_nothing_left(m)
    assert_sessions_empty([spawner])
  end

  describe "the BEAM SIGKILLed with 100 commands in flight" do
    test "without a cgroup: no supervisor, no command, no spawner is left" do
      kill_beam_in_flight(fault_marker(), [])
    end

    @tag :cgroup2
    test "with a cgroup: nothing is left, and no group" do
      m = fault_marker()
      base = make_cgroup2_base(m)
      pool = "#{base}/pool"

      kill_beam_in_flight(m, [cgroup_base: pool, beneath_own_cgroup: true], fn ->
        assert length(cgroup2_children(pool)) >= 100
      end)

      assert_cgroup_removed(pool)
    end
  end

  describe "the :muontrap application" do
    test "cmd/3 runs without it started, and stopping it leaves running commands alone" do
      m = fault_marker()

      script = """
      false = List.keymember?(Application.started_applications(), :muontrap, 0)
      IO.puts("not started: " <> inspect(MuonTrap.cmd("echo", [#{inspect(m)}])))
      {:ok, _} = Application.ensure_all_started(:muontrap)
      # The command runs until the application is stopped and a file made.
      go = Path.join(System.tmp_dir!(), #{inspect(m)})
      script = "echo a; while [ ! -e \\"$1\\" ]; do sleep 0.05; done; echo b"
      t = Task.async(fn -> MuonTrap.cmd("sh", ["-c", script, #{inspect(m)}, go]) end)
      true = Enum.any?(1..6000, fn _ -> Process.sleep(10); match?({_, 0}, System.cmd("pgrep", ["-f", #{inspect(m)}])) end)
      :ok = Application.stop(:muontrap)
      File.write!(go, "")
      IO.puts("after stop: " <> inspect(Task.await(t, 60_000)))
      File.rm!(go)
      """

      {port, _beam} = start_child_beam(script)
      assert child_line(port, "not started: ", 60_000) == inspect({"#{m}\n", 0})
      assert child_line(port, "after stop: ", 60_000) == inspect({"a\nb\n", 0})
      assert_nothing_left(m)
    end
  end

  describe "the standby supervisor killed" do
    test "the spawner says so on stderr, and the next start gets a supervisor all the same" do
      m = fault_marker()

      script = """
      {"", 0} = MuonTrap.cmd("true", [])
      IO.puts("spawner \#{MuonTrap.Nif.spawner_pid()}")
      IO.gets("")
      IO.puts("after " <> inspect(MuonTrap.cmd("echo", [#{inspect(m)}])))
      Process.sleep(:infinity)
      """

      {port, beam} = start_child_beam(script)
      spawner = String.to_integer(child_line(port, "spawner ", 60_000))
      [standby] = wait_until(fn -> match?([_], s = standbys(spawner)) && s end)
      signal(standby, "KILL")
      wait_all_dead([standby])
      Port.command(port, "\n")

      assert child_line(port, "muontrap spawner: ", 30_000) ==
               "the standby supervisor is gone, forking another"

      assert child_line(port, "after ", 30_000) == inspect({"#{m}\n", 0})
      # And a new standby for the start after.
      wait_until(fn -> match?([_], standbys(spawner)) end)
      signal(beam, "KILL")
      wait_all_dead([beam, spawner], 15_000)
    end
  end

  @nobody "env HOME=/tmp setpriv --reuid=65534 --regid=65534 --clear-groups"

  describe "a burst as a non-root user under ulimit -n 1024" do
    @describetag :non_root_burst
    test "1,000 simultaneous starts: each ends with its result or one error, none hangs" do
      m = fault_marker()

      # Every module loaded now, as in a release: code loaded lazily at
      # EMFILE (String.Chars.List to format an error) fails to load.
      script = """
      {"65534\\n", 0} = System.cmd("id", ["-u"])
      for app <- [:kernel, :stdlib, :elixir, :logger, :muontrap], :ok = Application.ensure_loaded(app),
          mod <- Application.spec(app, :modules), do: Code.ensure_loaded(mod)
      m = #{inspect(m)}
      results =
        1..1000
        |> Enum.map(fn i ->
          Task.async(fn ->
            try do
              if MuonTrap.cmd("echo", ["\#{m}.\#{i}"]) == {"\#{m}.\#{i}\\n", 0}, do: :ok, else: :wrong
            rescue
              e in MuonTrap.Error -> {:error, e.message}
            end
          end)
        end)
        |> Enum.map(&Task.yield(&1, 120_000))
      IO.puts("hung \#{Enum.count(results, &is_nil/1)}")
      IO.puts("wrong \#{Enum.count(results, &(&1 == {:ok, :wrong}))}")
      errors = for {:ok, {:error, e}} <- results, do: e
      IO.puts("errors \#{length(errors)} \#{inspect(Enum.uniq(errors))}")
      # The 32 descriptors of one start: 29 listeners and 3 pipes.
      listeners = for _ <- 1..29, do: elem(:gen_tcp.listen(0, ip: {127, 0, 0, 1}), 1)
      parent = self()
      {:ok, d} = MuonTrap.Daemon.start_link("sh", ["-c", "echo $LISTEN_FDS; exec sleep 100; : \#{m}"],
        listen_sockets: listeners, stderr_to_stdout: true, logger_fun: &send(parent, {:line, &1}))
      receive do {:line, l} -> IO.puts("listeners \#{l}") after 30_000 -> IO.puts("listeners none") end
      GenServer.stop(d)
      """

      {port, _beam} = start_child_beam(script, "ulimit -n 1024", @nobody)
      assert child_line(port, "hung ", 180_000) == "0"
      assert child_line(port, "wrong ", 10_000) == "0"
      errors = child_line(port, "errors ", 10_000)
      report("1,000 starts as nobody under ulimit -n 1024: errors #{errors}")
      [count | _] = String.split(errors, " ", parts: 2)
      # The BEAM's own descriptors run out (each start holds 4 to 6 of
      # them until it is handed over): those starts fail with EMFILE.
      # Descriptors in flight never fail one (ETOOMANYREFS): it waits.
      assert String.to_integer(count) < 1000, errors
      refute errors =~ "in flight", errors
      refute errors =~ "too many references", errors
      assert child_line(port, "listeners ", 60_000) == "29"
      assert_nothing_left(m)
    end
  end
end
