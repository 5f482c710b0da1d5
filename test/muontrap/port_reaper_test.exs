defmodule MuonTrap.PortReaperTest do
  # Who watches a cmd/3 for its caller (MuonTrap.PortReaper): the shared
  # reaper, unless the command has a :timeout, a cgroup, its own
  # :delay_to_sigkill or another :owner; and the shared reaper started
  # again once it is gone. Not async: it kills the shared reaper.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess}

  # Processes the calling process spawns while `fun` runs (a process's
  # trace messages go to another process, the tracer).
  defp spawned_by_caller(fun) do
    test = self()
    tracer = spawn_link(fn -> collect_spawns(test, []) end)
    :erlang.trace(self(), true, [:procs, {:tracer, tracer}])
    fun.()
    :erlang.trace(self(), false, [:procs])
    ref = :erlang.trace_delivered(self())
    assert_receive {:trace_delivered, _, ^ref}
    send(tracer, {:report, ref})
    assert_receive {:spawned, ^ref, pids}
    pids
  end

  defp collect_spawns(test, acc) do
    receive do
      {:trace, _, :spawn, pid, _} -> collect_spawns(test, [pid | acc])
      {:report, ref} -> send(test, {:spawned, ref, acc})
      _other -> collect_spawns(test, acc)
    end
  end

  test "a cmd/3 with the defaults starts no process of its own; one with a :timeout does" do
    assert {"", 0} = MuonTrap.cmd("true", [])
    assert [] = spawned_by_caller(fn -> MuonTrap.cmd("true", []) end)
    assert [] = spawned_by_caller(fn -> MuonTrap.cmd("true", [], timeout: :infinity) end)
    assert [_reaper] = spawned_by_caller(fn -> MuonTrap.cmd("true", [], timeout: 60_000) end)
    assert [_reaper] = spawned_by_caller(fn -> MuonTrap.cmd("true", [], delay_to_sigkill: 50) end)
  end

  test "the shared reaper, killed, is started again with a warning and sees to a killed caller's command" do
    assert {"", 0} = MuonTrap.cmd("true", [])
    old = Process.whereis(MuonTrap.PortReaper)
    assert is_pid(old)
    ref = Process.monitor(old)
    Process.exit(old, :kill)
    assert_receive {:DOWN, ^ref, :process, ^old, :killed}

    m = fault_marker()

    log =
      capture_log(fn ->
        port = kill_caller_of_stopped_port(m, [])
        new = Process.whereis(MuonTrap.PortReaper)
        assert is_pid(new) and new != old
        wait_all_dead([port], 10_000)
        assert_nothing_left(m)
      end)

    assert log =~ "the shared reaper was started again"
  end
end
