defmodule MuonTrap.FaultsKillCgroupTest do
  # The port binary and the command SIGKILLed at each stage, with a cgroup
  # (cgroup2 only, no controllers: a hybrid host's unified hierarchy, or
  # pure v2). Every command leaves a daemonized grandchild that only the
  # cgroup can find. "Before STARTED" is held for real: the test's base
  # group is frozen, so the port's child freezes as it joins its group,
  # before its exec, and the port waits in clone(CLONE_VFORK).
  # Groups go to BASE/pool/LEAF: the port makes pool, and must remove it
  # again, also when the Elixir side cleans up after a dead port binary.
  # Not async: the BEAM's descriptors must come back to their baseline.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess}

  alias MuonTrap.Daemon

  @moduletag :cgroup2

  @port_died "muontrap: the command's supervisor exited unexpectedly"
  # Only a bound: every test ends the stop sooner.
  @stop_delay 10_000

  setup do
    m = fault_marker()
    base = make_cgroup2_base(m)
    fds = fd_count()

    on_exit(fn ->
      # The test process's descriptors, checked once it is gone.
      assert_fds_back(fds)
    end)

    %{m: m, base: base, pool: "#{base}/pool"}
  end

  defp opts(pool, more \\ []),
    do: Keyword.merge([cgroup_base: pool, beneath_own_cgroup: true, delay_to_sigkill: 100], more)

  defp cmd_task(m, script, opts) do
    Task.async(fn ->
      try do
        MuonTrap.cmd("sh", ["-c", script, "sh", m], opts)
      rescue
        e in MuonTrap.Error -> {:raised, e.message}
      end
    end)
  end

  # A grandchild that escapes the port's tree, then the command proper.
  defp escaping(then), do: "#{helper()} daemonize \"$1\" >/dev/null; #{then}"

  # The command's group, once at least `count` processes are in it.
  defp leaf(pool, count) do
    wait_until(
      fn ->
        with true <- File.dir?(cgroup2_dir(pool)),
             [leaf] <- cgroup2_children(pool),
             true <- length(cgroup_procs("#{pool}/#{leaf}")) >= count do
          "#{pool}/#{leaf}"
        else
          _ -> nil
        end
      end,
      15_000,
      "#{count} processes in a group beneath #{pool}"
    )
  end

  defp parent_pid(pid) do
    [_, rest] = String.split(File.read!("/proc/#{pid}/stat"), ") ", parts: 2)
    rest |> String.split() |> Enum.at(1) |> String.to_integer()
  end

  defp assert_all_gone(m, pool) do
    assert_nothing_left(m)
    assert_cgroup_removed(pool)
  end

  describe "before STARTED (the group frozen as the command joins it)" do
    setup %{base: base} do
      freeze(base, true)
      :ok
    end

    test "the port binary SIGKILLed: a clear error, the group killed and removed", c do
      task = cmd_task(c.m, "exec #{helper()} sleep \"$1\"", opts(c.pool))
      [child] = cgroup_procs(leaf(c.pool, 1))
      # Not port_binary/1: the child, not yet exec'd, shows the port's command line.
      port = parent_pid(child)
      wait_until(fn -> File.read!("/proc/#{port}/stat") =~ ~r/\) D / end, 5_000, "vfork wait")
      signal(port, "KILL")
      assert {:raised, @port_died} = Task.await(task, 15_000)
      assert_all_gone(c.m, c.pool)
    end

    test "the command SIGKILLed before its exec: status 137, the group removed", c do
      task = cmd_task(c.m, "exec #{helper()} sleep \"$1\"", opts(c.pool))
      [child] = cgroup_procs(leaf(c.pool, 1))
      signal(child, "KILL")
      assert {"", 137} = Task.await(task, 15_000)
      assert_all_gone(c.m, c.pool)
    end
  end

  describe "while streaming" do
    test "the port binary SIGKILLed: a clear error, the escaped grandchild killed", c do
      parent = self()
      script = escaping("exec #{helper()} repeat \"$1\" 0")
      task = cmd_task(c.m, script, opts(c.pool, into: %Collect{to: parent, max: 1_000}))
      assert_receive {:collected, _}, 15_000
      leaf(c.pool, 2)
      signal(port_binary(c.m), "KILL")
      assert {:raised, @port_died} = Task.await(task, 15_000)
      assert_all_gone(c.m, c.pool)
    end

    test "the command SIGKILLed: status 137, the escaped grandchild killed", c do
      parent = self()
      script = escaping("exec #{helper()} repeat \"$1\" 0")
      task = cmd_task(c.m, script, opts(c.pool, into: %Collect{to: parent, max: 1_000}))
      assert_receive {:collected, _}, 15_000
      group = leaf(c.pool, 2)
      command = Enum.find(cgroup_procs(group), &(File.read!("/proc/#{&1}/cmdline") =~ "repeat"))
      signal(command, "KILL")
      assert {%Collect{}, 137} = Task.await(task, 15_000)
      assert_all_gone(c.m, c.pool)
    end
  end

  describe "while stopping" do
    setup %{m: m} do
      file = tmp_file(m)
      on_exit(fn -> File.rm(file) end)
      %{term_file: file, script: escaping(stopping_command(file))}
    end

    # The caller lets go as soon as its trap is set (a stream halted: no
    # deadline to race on a slow machine), leaving the port to stop it.
    defp let_go_while_stopping(c) do
      stream =
        MuonTrap.stream!(
          "sh",
          ["-c", c.script, "sh", c.m],
          opts(c.pool, delay_to_sigkill: @stop_delay)
        )

      assert ["up\n"] = Enum.take(stream, 1)
      wait_until(fn -> File.exists?(c.term_file) end, 10_000, "the stop's SIGTERM")
    end

    test "the port binary SIGKILLed after its caller let go: the Elixir side cleans up", c do
      let_go_while_stopping(c)
      signal(port_binary(c.m), "KILL")
      # At once, through the NIF: not after the stop delay.
      wait_until(fn -> all_pids_matching(c.m) == [] end, @stop_delay - 2_000, "nothing left")
      assert_all_gone(c.m, c.pool)
    end

    test "the command SIGKILLed after its caller let go: the port binary kills the rest", c do
      let_go_while_stopping(c)
      procs = cgroup_procs(leaf(c.pool, 2))
      command = Enum.find(procs, &(File.read!("/proc/#{&1}/cmdline") =~ "trap"))
      signal(command, "KILL")
      assert_all_gone(c.m, c.pool)
    end

    test "the port binary SIGKILLed while a daemon stops: the stop returns, all is gone", c do
      parent = self()

      capture_log(fn ->
        {:ok, daemon} =
          Daemon.start_link(
            "sh",
            ["-c", c.script, "sh", c.m],
            opts(c.pool, delay_to_sigkill: @stop_delay, logger_fun: &send(parent, {:line, &1}))
          )

        # Its SIGTERM trap is set.
        assert_receive {:line, "up"}, 15_000
        port = Daemon.os_pid(daemon)
        stop = Task.async(fn -> :timer.tc(fn -> GenServer.stop(daemon) end) end)
        wait_until(fn -> File.exists?(c.term_file) end, 10_000, "the stop's SIGTERM")
        signal(port, "KILL")
        assert {us, :ok} = Task.await(stop, 30_000)
        assert div(us, 1000) < @stop_delay
        assert_all_gone(c.m, c.pool)
      end)
    end
  end
end
