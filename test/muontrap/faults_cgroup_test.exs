defmodule MuonTrap.FaultsCgroupTest do
  # The command's group frozen, or killed and removed, from outside while
  # the command runs (cgroup2 only, no controllers: a hybrid host's unified
  # hierarchy, or pure v2). A clear error or a clean exit each time, and
  # nothing left. Not async: the BEAM's descriptors must come back to
  # their baseline.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess}

  alias MuonTrap.{Cgroup, Daemon}

  @moduletag :cgroup2

  setup do
    m = fault_marker()
    base = make_cgroup2_base(m)
    fds = fd_count()
    on_exit(fn -> assert_fds_back(fds) end)
    %{m: m, pool: "#{base}/pool"}
  end

  defp opts(pool, more),
    do: Keyword.merge([cgroup_base: pool, beneath_own_cgroup: true, delay_to_sigkill: 100], more)

  # A daemonized grandchild, then `then`; `$1` is the marker.
  defp escaping(then), do: "#{helper()} daemonize \"$1\" >/dev/null; #{then}"

  defp cmd_task(c, script, more) do
    parent = self()
    opts = opts(c.pool, [into: %Collect{to: parent}] ++ more)

    Task.async(fn ->
      t0 = System.monotonic_time(:millisecond)
      result = MuonTrap.cmd("sh", ["-c", script, "sh", c.m], opts)
      {result, System.monotonic_time(:millisecond) - t0}
    end)
  end

  # The command's group once both its processes are in it.
  defp leaf(pool) do
    wait_until(
      fn ->
        with true <- File.dir?(cgroup2_dir(pool)),
             [leaf] <- cgroup2_children(pool),
             true <- length(cgroup_procs("#{pool}/#{leaf}")) >= 2,
             do: "#{pool}/#{leaf}",
             else: (_ -> nil)
      end,
      15_000,
      "the command's group beneath #{pool}"
    )
  end

  defp events(group), do: File.read!(Path.join(cgroup2_dir(group), "cgroup.events"))

  defp frozen!(group) do
    freeze(group, true)
    wait_until(fn -> events(group) =~ "frozen 1" end, 5_000, "#{group} to be frozen")
  end

  # From outside, as an administrator would: kill everything, then rmdir.
  defp kill_and_remove(group) do
    dir = cgroup2_dir(group)
    :ok = File.write(Path.join(dir, "cgroup.kill"), "1")
    wait_until(fn -> File.rmdir(dir) in [:ok, {:error, :enoent}] end, 5_000, "rmdir #{dir}")
  end

  defp assert_all_gone(c) do
    assert_nothing_left(c.m)
    assert_cgroup_removed(c.pool)
  end

  describe "frozen from outside" do
    test "cmd/3's :timeout holds, and the stop's SIGKILL ends the frozen tree", c do
      task = cmd_task(c, escaping("echo up; exec #{helper()} sleep \"$1\""), timeout: 3_000)
      frozen!(leaf(c.pool))
      assert {{%Collect{}, :timeout}, elapsed} = Task.await(task, 30_000)
      assert elapsed >= 3_000 and elapsed < 3_000 + 3_000, "returned after #{elapsed} ms"
      assert_all_gone(c)
    end

    test "a daemon still stops, at its SIGKILL delay", c do
      capture_log(fn ->
        script = escaping("exec #{helper()} sleep \"$1\"")
        {:ok, daemon} = Daemon.start_link("sh", ["-c", script, "sh", c.m], opts(c.pool, []))
        frozen!(leaf(c.pool))
        {us, :ok} = :timer.tc(fn -> GenServer.stop(daemon) end)
        assert div(us, 1000) < 100 + 3_000
        assert_all_gone(c)
      end)
    end

    test "and thawed: the command goes on where it was", c do
      task = cmd_task(c, escaping("while :; do echo tick; sleep 0.05; done"), timeout: 30_000)
      assert_receive {:collected, _}, 15_000
      group = leaf(c.pool)
      frozen!(group)
      # What was written before the freeze, then nothing.
      wait_until(&quiet?/0, 10_000, "the output to stop")
      refute_receive {:collected, _}, 300
      freeze(group, false)
      assert_receive {:collected, "tick\n"}, 5_000
      Task.shutdown(task, :brutal_kill)
      assert_all_gone(c)
    end
  end

  describe "removed from outside" do
    test "while it holds processes: rmdir fails (EBUSY), the command goes on", c do
      task = cmd_task(c, escaping("echo up; exec #{helper()} sleep \"$1\""), [])
      group = leaf(c.pool)
      assert {:error, :ebusy} = File.rmdir(cgroup2_dir(group))
      assert length(cgroup_procs(group)) >= 2
      assert Task.yield(task, 200) == nil
      Task.shutdown(task, :brutal_kill)
      assert_all_gone(c)
    end

    test "killed and removed: cmd/3 returns status 137, the port removes the rest", c do
      task = cmd_task(c, escaping("echo up; exec #{helper()} sleep \"$1\""), [])
      kill_and_remove(leaf(c.pool))
      assert {{%Collect{}, 137}, _} = Task.await(task, 30_000)
      assert_all_gone(c)
    end

    test "killed and removed: a daemon relaunches into a fresh group", c do
      capture_log(fn ->
        script = escaping("exec #{helper()} sleep \"$1\"")
        # The relaunch waits long enough for the rmdir from outside to land
        # between the kill and the next command, even on a loaded machine.
        opts = opts(c.pool, relaunch: [retries: 2, delay: 1_000])
        {:ok, daemon} = Daemon.start_link("sh", ["-c", script, "sh", c.m], opts)
        group = leaf(c.pool)
        first = command_pid(daemon)
        kill_and_remove(group)

        wait_until(fn -> Daemon.statistics(daemon)[:relaunch_count] == 1 end, 15_000, "relaunch")
        second = wait_until(fn -> (pid = command_pid(daemon)) != first && pid end)
        assert leaf(c.pool) == group
        assert {:ok, procs} = Daemon.cgget(daemon, "cgroup.procs")
        assert "#{second}" in String.split(procs)
        GenServer.stop(daemon)
        assert_all_gone(c)
      end)
    end
  end

  describe "groups the command made beneath its own" do
    # The command moves itself into a group it makes beneath its own (as
    # a container runtime or a service manager would), and a daemonized
    # grandchild follows it there.
    test "are killed and removed with the command's group", c do
      capture_log(fn ->
        script = """
        own=$(sed -n 's/^0:://p' /proc/self/cgroup)
        mkdir "#{Cgroup.layout().v2.mount}$own/sub" && echo $$ > "#{Cgroup.layout().v2.mount}$own/sub/cgroup.procs"
        #{escaping("exec #{helper()} sleep \"$1\"")}
        """

        {:ok, daemon} = Daemon.start_link("sh", ["-c", script, "sh", c.m], opts(c.pool, []))

        leaf =
          wait_until(fn ->
            with true <- File.dir?(cgroup2_dir(c.pool)),
                 [leaf] <- cgroup2_children(c.pool),
                 do: leaf,
                 else: (_ -> nil)
          end)

        sub = "#{c.pool}/#{leaf}/sub"
        wait_until(fn -> File.dir?(cgroup2_dir(sub)) && length(cgroup_procs(sub)) >= 2 end)
        GenServer.stop(daemon)
        assert_all_gone(c)
      end)
    end
  end

  # No output for 100 ms.
  defp quiet? do
    receive do
      {:collected, _} -> false
    after
      100 -> true
    end
  end
end
