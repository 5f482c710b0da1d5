defmodule MuonTrap.SignalsTest do
  # Daemon.signal/2 and reload/1 reach the command's main process (the
  # MAINPID it reported, else the exec'd one), and :stop_signal starts
  # every stop sequence, with SIGKILL after :delay_to_sigkill.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  doctest MuonTrap.Signal

  defp forward(pid \\ self()), do: fn line -> send(pid, {:line, line}) end

  # A daemon whose sh prints `got SIG` for each of `sigs` it traps, and
  # "ready" once the traps are set.
  defp trapping(sigs, opts \\ []) do
    m = marker()
    traps = Enum.map_join(sigs, "; ", &"trap 'echo got #{&1}' #{&1}")
    script = "#{traps}; echo ready; while :; do sleep 0.02; done # #{m}"

    {:ok, pid} =
      Daemon.start_link(
        "sh",
        ["-c", script],
        [logger_fun: forward(), ready: {:output, "ready"}] ++ opts
      )

    {pid, m}
  end

  defp stop(pid, m) do
    os = Daemon.os_pid(pid)
    GenServer.stop(pid)
    wait_all_dead([os])
    wait_until(fn -> pids_matching(m) == [] end)
  end

  test "signal/2 reaches the command's traps, by name and by number" do
    {pid, m} = trapping(["USR1", "USR2", "HUP"])
    assert_receive {:line, "ready"}

    assert Daemon.signal(pid, :sigusr1) == :ok
    assert_receive {:line, "got USR1"}, 5_000
    assert Daemon.signal(pid, 12) == :ok
    assert_receive {:line, "got USR2"}, 5_000
    assert Daemon.signal(pid, :sighup) == :ok
    assert_receive {:line, "got HUP"}, 5_000
    stop(pid, m)
  end

  test "an unknown signal is an ArgumentError in the caller; the daemon goes on" do
    {pid, m} = trapping(["USR1"])

    assert_raise ArgumentError, ~r/unknown signal :sigfoo/, fn -> Daemon.signal(pid, :sigfoo) end
    assert_raise ArgumentError, ~r/invalid signal "HUP"/, fn -> Daemon.signal(pid, "HUP") end
    assert_raise ArgumentError, ~r/invalid signal 65/, fn -> Daemon.signal(pid, 65) end
    assert Daemon.signal(pid, :sigusr1) == :ok
    assert_receive {:line, "got USR1"}, 5_000
    stop(pid, m)
  end

  test "before the command runs, and after it is gone, the answer is :not_running" do
    gate = self()

    {:ok, pid} =
      Daemon.start_link("sleep", ["1000"],
        wait_for: fn ->
          send(gate, :waiting)
          receive do: (:go -> :ok)
        end
      )

    assert_receive :waiting
    assert Daemon.signal(pid, :sighup) == {:error, :not_running}
    GenServer.stop(pid)

    Process.flag(:trap_exit, true)
    {:ok, pid} = Daemon.start_link("sleep", ["1000"])

    os = command_pid(pid)

    System.cmd("kill", ["-KILL", "#{os}"])
    # Dead (a zombie until the port reaps it): a signal can no longer land.
    wait_all_dead([os])

    # The port answers that the program is gone, or the daemon has already stopped.
    result =
      try do
        Daemon.signal(pid, :sighup)
      catch
        :exit, _ -> :stopped
      end

    assert result in [{:error, :not_running}, :stopped]

    assert_receive {:EXIT, ^pid, _}, 5_000
  end

  @tag :linux
  test "the signal goes to the MAINPID the command reported, not to the exec'd shell" do
    m = marker()

    child =
      "sh -c 'trap \"echo child got USR1\" USR1; echo child ready; " <>
        "while :; do sleep 0.02; done # #{m}'"

    script =
      "trap 'echo parent got USR1' USR1; #{child} & systemd-notify --ready --pid=$!; " <>
        "while :; do sleep 0.02; done # #{m}"

    {:ok, pid} = Daemon.start_link("sh", ["-c", script], ready: :notify, logger_fun: forward())
    main = wait_until(fn -> Daemon.status(pid).main_pid end)
    assert main != Daemon.command_os_pid(pid)
    # Its trap is set (before, USR1 would end it).
    assert_receive {:line, "child ready"}, 5_000
    assert Daemon.signal(pid, :sigusr1) == :ok
    assert_receive {:line, "child got USR1"}, 5_000
    refute_received {:line, "parent got USR1"}
    stop(pid, m)
  end

  test "reload/1 without notify: :ok once the :reload_signal is sent" do
    {pid, m} = trapping(["HUP", "USR2"], reload_signal: :sigusr2)
    assert Daemon.reload(pid) == :ok
    assert_receive {:line, "got USR2"}, 5_000
    stop(pid, m)
  end

  @tag :linux
  test "reload/1 with notify waits for RELOADING=1 then READY=1" do
    m = marker()
    gate = Path.join(System.tmp_dir!(), "reload_#{m}")
    on_exit(fn -> File.rm(gate) end)

    # On HUP: RELOADING=1, then READY=1 only once the test opens the gate.
    on_hup =
      "systemd-notify RELOADING=1; while [ ! -e #{gate} ]; do sleep 0.02; done; systemd-notify --ready"

    script = "trap '#{on_hup}' HUP; systemd-notify --ready; while :; do sleep 0.02; done # #{m}"
    {:ok, pid} = Daemon.start_link("sh", ["-c", script], ready: :notify)

    task = Task.async(fn -> Daemon.reload(pid) end)
    wait_until(fn -> Daemon.status(pid).state == :reloading end)
    assert Task.yield(task, 100) == nil
    File.write!(gate, "")
    assert Task.await(task, 10_000) == :ok
    assert Daemon.status(pid).state == :ready
    stop(pid, m)
  end

  @tag :linux
  test "reload/1 with notify times out after :ready_timeout if the command never reloads" do
    m = marker()
    script = "trap '' HUP; systemd-notify --ready; while :; do sleep 0.02; done # #{m}"
    {:ok, pid} = Daemon.start_link("sh", ["-c", script], ready: :notify, ready_timeout: 2_000)

    t0 = System.monotonic_time(:millisecond)
    assert Daemon.reload(pid) == {:error, :reload_timeout}
    assert System.monotonic_time(:millisecond) - t0 >= 1_900
    # The daemon goes on.
    assert Daemon.status(pid).state == :ready
    stop(pid, m)
  end

  describe ":stop_signal" do
    test "starts a daemon's stop: a trap for SIGINT sees it and exits by itself" do
      m = marker()
      file = Path.join(System.tmp_dir!(), "stop_#{m}")
      on_exit(fn -> File.rm(file) end)

      script =
        "trap 'echo INT > #{file}; exit 0' INT; echo ready; while :; do sleep 0.02; done # #{m}"

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", script],
          stop_signal: :sigint,
          delay_to_sigkill: 10_000,
          ready: {:output, "ready"}
        )

      t0 = System.monotonic_time(:millisecond)
      GenServer.stop(pid)
      # Well before the 10 s SIGKILL: the command stopped on SIGINT itself.
      assert System.monotonic_time(:millisecond) - t0 < 5_000
      assert File.read!(file) == "INT\n"
      wait_until(fn -> pids_matching(m) == [] end)
    end

    test "a command that ignores it is SIGKILLed after :delay_to_sigkill" do
      m = marker()
      script = "trap '' INT; echo ready; while :; do sleep 0.02; done # #{m}"

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", script],
          stop_signal: :sigint,
          delay_to_sigkill: 300,
          ready: {:output, "ready"}
        )

      sh = Daemon.command_os_pid(pid)
      t0 = System.monotonic_time(:millisecond)
      GenServer.stop(pid)
      assert System.monotonic_time(:millisecond) - t0 >= 250
      wait_all_dead([sh])
    end

    test "cmd/3's timeout sends it too" do
      m = marker()
      file = Path.join(System.tmp_dir!(), "stop_#{m}")
      on_exit(fn -> File.rm(file) end)

      script =
        "exec 2>/dev/null; trap 'echo QUIT > #{file}; exit 0' QUIT; while :; do sleep 0.02; done # #{m}"

      assert {"", :timeout} =
               MuonTrap.cmd("sh", ["-c", script], stop_signal: :sigquit, timeout: 300)

      wait_until(fn -> File.read(file) == {:ok, "QUIT\n"} end)
      wait_until(fn -> pids_matching(m) == [] end)
    end

    test "SIGKILL and SIGSTOP are refused" do
      for sig <- [:sigkill, :sigstop, 9, 19] do
        assert_raise ArgumentError, ~r/stop signal must be one the command can handle/, fn ->
          MuonTrap.cmd("true", [], stop_signal: sig)
        end
      end
    end
  end
end
