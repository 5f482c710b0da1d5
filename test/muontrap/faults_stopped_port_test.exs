defmodule MuonTrap.FaultsStoppedPortTest do
  # The port binary SIGSTOPped while its caller waits: the caller's
  # :timeout still holds, and once the caller lets go (or dies) the Elixir
  # side SIGKILLs the stuck port binary and cleans the cgroup through the
  # NIF (MuonTrap.PortReaper). Not async: the BEAM's descriptor count must
  # come back to its baseline, which other tests would move.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess}

  alias MuonTrap.Daemon

  # What the reaper waits beyond :delay_to_sigkill before the SIGKILL, with
  # room for a loaded machine.
  @reaped_within 10_000

  # Start `script` with cmd/3 in a task, wait for its first output, stop
  # its port binary. Returns the task and the port binary's OS pid.
  defp start_and_stop_port(m, script, opts) do
    parent = self()

    task =
      Task.async(fn ->
        t0 = System.monotonic_time(:millisecond)
        result = MuonTrap.cmd("sh", ["-c", script], [into: %Collect{to: parent}] ++ opts)
        {result, System.monotonic_time(:millisecond) - t0}
      end)

    await_up("")
    port = port_binary(m)
    signal(port, "STOP")
    wait_until(fn -> stopped?(port) end, 5_000, "the port binary to stop")
    {task, port}
  end

  # Chunks may hold more than the line (a daemonized grandchild's pid).
  defp await_up(seen) do
    unless String.contains?(seen, "up\n") do
      assert_receive {:collected, data}, 15_000
      await_up(seen <> data)
    end
  end

  defp assert_timed_out_promptly(task, timeout) do
    assert {{%Collect{}, :timeout}, elapsed} = Task.await(task, 30_000)
    # At the deadline, not after the port binary (which never answers).
    assert elapsed >= timeout and elapsed < timeout + 3_000, "returned after #{elapsed} ms"
  end

  test "without a cgroup: the timeout holds, then the port is killed and the command dies" do
    m = fault_marker()
    fds = fd_count()

    capture_log(fn ->
      # Time to start and be stopped before the deadline, also beside two
      # CPU hogs.
      {task, port} =
        start_and_stop_port(m, "echo up; exec #{helper()} sleep #{m}",
          timeout: 3_000,
          delay_to_sigkill: 100
        )

      assert_timed_out_promptly(task, 3_000)
      wait_all_dead([port], @reaped_within)
      # The command died with its port binary (PR_SET_PDEATHSIG).
      assert_nothing_left(m)
    end)

    assert_fds_back(fds)
  end

  @tag :cgroup2
  test "with a cgroup: the port is killed and the whole group killed and removed" do
    m = fault_marker()
    base = make_cgroup2_base(m)
    fds = fd_count()

    capture_log(fn ->
      # The daemonized grandchild is out of the port's process tree: only
      # the cgroup finds it once the port binary is gone.
      script = "#{helper()} daemonize #{m}; echo up; exec #{helper()} sleep #{m}"

      # Time to start and be stopped before the deadline, also in the
      # emulated VM of scripts/vm_test.
      {task, port} =
        start_and_stop_port(m, script,
          timeout: 3_000,
          delay_to_sigkill: 100,
          cgroup_base: base,
          beneath_own_cgroup: true
        )

      [group] = cgroup2_children(base)
      assert length(cgroup_procs("#{base}/#{group}")) >= 2
      assert_timed_out_promptly(task, 3_000)
      wait_all_dead([port], @reaped_within)
      assert_nothing_left(m)
      assert_cgroup_removed("#{base}/#{group}")
    end)

    assert_fds_back(fds)
  end

  test "a caller killed while its port is stopped: the port is killed, the command dies" do
    m = fault_marker()
    fds = fd_count()

    capture_log(fn ->
      port = kill_caller_of_stopped_port(m, delay_to_sigkill: 100)
      wait_all_dead([port], @reaped_within)
      assert_nothing_left(m)
    end)

    assert_fds_back(fds)
  end

  # With no :timeout, :cgroup_path or :delay_to_sigkill, the command is the
  # shared reaper's (MuonTrap.PortReaper), which SIGKILLs a supervisor that
  # is stuck after the default :delay_to_sigkill and the grace.
  test "the defaults: a caller killed while its port is stopped, the port killed by the shared reaper" do
    m = fault_marker()
    fds = fd_count()

    capture_log(fn ->
      port = kill_caller_of_stopped_port(m, [])
      wait_all_dead([port], @reaped_within)
      assert_nothing_left(m)
    end)

    assert_fds_back(fds)
  end

  test "the defaults: a stream halted while its port is stopped, the port killed by the shared reaper" do
    m = fault_marker()
    fds = fd_count()

    capture_log(fn ->
      port =
        MuonTrap.stream!("sh", ["-c", "echo up; exec #{helper()} sleep #{m}"])
        |> Enum.find_value(fn chunk ->
          if String.contains?(chunk, "up\n") do
            port = port_binary(m)
            signal(port, "STOP")
            wait_until(fn -> stopped?(port) end, 5_000, "the port binary to stop")
            port
          end
        end)

      wait_all_dead([port], @reaped_within)
      assert_nothing_left(m)
    end)

    assert_fds_back(fds)
  end

  test "a daemon whose port is stopped still stops, and takes its command with it" do
    m = fault_marker()
    fds = fd_count()

    capture_log(fn ->
      {:ok, daemon} = Daemon.start_link(helper(), ["sleep", m], delay_to_sigkill: 100)
      command_pid(daemon)
      port = Daemon.os_pid(daemon)
      signal(port, "STOP")
      wait_until(fn -> stopped?(port) end, 5_000, "the port binary to stop")
      {elapsed, :ok} = :timer.tc(fn -> GenServer.stop(daemon) end)
      # :delay_to_sigkill and the daemon's grace of 2 s, then the kill.
      assert div(elapsed, 1000) < 100 + 2_000 + 5_000
      wait_all_dead([port], @reaped_within)
      assert_nothing_left(m)
    end)

    assert_fds_back(fds)
  end
end
