defmodule MuonTrap.FaultsBeamKillTest do
  # The BEAM itself SIGKILLed, in a child BEAM running MuonTrap from this
  # build, with a command at each stage at once: one before STARTED, one
  # streaming, two stopping (a halted stream, a daemon's stop).
  # Every port binary sees its stdin close and finishes on its own:
  # nothing is left in /proc, and no cgroup directory.
  use ExUnit.Case, async: true

  import MuonTrap.Test.{Faults, OSProcess}

  @moduletag timeout: 300_000

  # Longer than it takes to see every stage and kill the BEAM, short
  # enough to wait for after the kill.
  @stop_delay 6_000

  # Elixir code for the child BEAM: `hold` starts the command held before
  # STARTED; `opts` go to every command.
  defp script(m, hold, opts) do
    [cmd_file, daemon_file] = for s <- ~w(c d), do: tmp_file(m <> s)
    on_exit(fn -> Enum.each([cmd_file, daemon_file], &File.rm/1) end)
    stopping = fn file -> ["-c", stopping_command(file)] end

    """
    helper = #{inspect(helper())}
    m = #{inspect(m)}
    opts = #{inspect(opts)}
    wait = fn f -> Enum.find_value(1..3000, fn _ -> f.() || (Process.sleep(10) && nil) end) end
    #{hold}
    spawn(fn -> MuonTrap.stream!(helper, ["repeat", m <> "\\n", "0"], opts) |> Stream.run() end)
    # Let go of once its trap is set: the port binary stops it on its own.
    spawn(fn ->
      MuonTrap.stream!("sh", #{inspect(stopping.(cmd_file))}, opts ++ [delay_to_sigkill: #{@stop_delay}])
      |> Enum.take(1)
    end)
    parent = self()
    {:ok, d} =
      MuonTrap.Daemon.start_link("sh", #{inspect(stopping.(daemon_file))},
        opts ++ [delay_to_sigkill: #{@stop_delay}, logger_fun: &send(parent, {:line, &1})])
    receive do {:line, "up"} -> :ok end
    spawn(fn -> GenServer.stop(d) end)
    wait.(fn -> File.exists?(#{inspect(cmd_file)}) and File.exists?(#{inspect(daemon_file)}) end)
    IO.puts("ready")
    Process.sleep(:infinity)
    """
  end

  defp kill_beam_and_check(m, script) do
    {port, beam} = start_child_beam(script)
    # Slow where BEAMs start slowly (scripts/vm_test emulates its CPUs).
    assert child_line(port, "ready", 150_000) == ""
    # The stream's port, the halted stream's, the daemon's, the one held
    # before STARTED. "ready" waits for the two stopping ones only: the
    # other two may not have exec'd yet (on a loaded machine, with the
    # portable path's fork, the marker is in their cmdline only then).
    ports =
      wait_until(
        fn ->
          ports = port_binaries_matching(m)
          length(ports) >= 4 && ports
        end,
        30_000,
        fn -> "4 port binaries, found #{inspect(port_binaries_matching(m))}" end
      )

    signal(beam, "KILL")
    # Not its port's exit status: that waits for every process holding
    # the BEAM's stdout, a frozen one included.
    wait_all_dead([beam], 15_000)
    ports
  end

  test "without a cgroup" do
    m = fault_marker()
    # Started and then no step taken (the hand-over is done when the port
    # opens): the command runs, its output unread. Kept referenced: a
    # collected stdio resource would close the pipes.
    hold =
      "Process.put(:held, MuonTrap.Run.start(MuonTrap.Options.validate(:cmd, helper, [\"sleep\", m], [])))"

    ports = kill_beam_and_check(m, script(m, hold, []))
    wait_all_dead(ports, 15_000)
    assert_nothing_left(m)
  end

  @tag :cgroup2
  test "with a cgroup, one command held in a frozen group before STARTED" do
    m = fault_marker()
    base = make_cgroup2_base(m)
    frozen = make_cgroup2_base(m <> "f")
    freeze(frozen, true)
    opts = [cgroup_base: "#{base}/pool", beneath_own_cgroup: true]

    hold = """
    spawn(fn ->
      MuonTrap.cmd(helper, ["sleep", m], cgroup_base: #{inspect(frozen)}, beneath_own_cgroup: true)
    end)
    """

    ports = kill_beam_and_check(m, script(m, hold, opts))
    [held] = cgroup2_children(frozen)
    assert [_child] = cgroup_procs("#{frozen}/#{held}")
    # Thawed, the held command runs, and its port binary finds its stdin closed.
    freeze(frozen, false)
    wait_all_dead(ports, 15_000)
    assert_nothing_left(m)
    assert_cgroup_removed("#{base}/pool")
    assert_cgroup_removed("#{frozen}/#{held}")
  end
end
