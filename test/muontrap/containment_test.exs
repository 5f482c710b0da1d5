defmodule MuonTrap.ContainmentTest do
  # Containment without cgroups: the port binary is a child subreaper, so
  # every descendant -- daemonized, in another session or process group,
  # ignoring SIGTERM, or racing the kill loop -- is found and killed.
  # Everything is checked in /proc.
  use ExUnit.Case, async: true

  # Escapes from the process group (setsid) are contained only on Linux
  # (the subreaper) and FreeBSD: excluded on the portable build.
  @moduletag :linux

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  # A command that tries every way out: a double-forked setsid daemon, a
  # tree that ignores SIGTERM, a fork bomb whose processes change session,
  # process group and pid, and a foreground sleep.
  defp escapist(m) do
    h = helper()

    "#{h} daemonize #{m}; #{h} ignore_sigterm 2 #{m} & #{h} fork_bomb 3 #{m} & exec #{h} sleep #{m}"
  end

  # daemonize leaves 1, ignore_sigterm 3, fork_bomb 7 inner nodes, sleep 1
  # (fork_bomb's 8 leaves change pid every 20 ms: a scan of /proc sees some).
  @escapist_count 12

  # The helper's processes (not the BEAM whose command line holds the marker).
  defp helpers(m), do: Enum.filter(pids_matching(m), &(cmdline(&1) =~ "muontrap_test_helper "))

  defp sleeper(m) do
    case Enum.filter(helpers(m), &String.starts_with?(cmdline(&1), helper() <> " sleep ")) do
      [pid] -> pid
      _ -> nil
    end
  end

  defp wait_for_escapist(m) do
    wait_until(
      fn -> length(helpers(m)) >= @escapist_count end,
      10_000,
      fn ->
        "#{@escapist_count} processes, have #{inspect(Enum.map(pids_matching(m), &cmdline/1))}"
      end
    )
  end

  # A scan of /proc can miss a fork bomb's leaves while they change pid, so
  # "none seen once" is not "none left": the port binary exits only once
  # it has reaped every descendant, so wait for it first (when known), then
  # check that scans spread over a second all come back empty.
  defp assert_nothing_left(m, port_binaries \\ []) do
    wait_all_dead(port_binaries, 15_000)
    wait_until(fn -> helpers(m) == [] end, 10_000, "every process of #{m} to be gone")

    for _ <- 1..5 do
      Process.sleep(200)
      assert helpers(m) == []
    end
  end

  test "after cmd/3 returns: a daemonized grandchild (double fork + setsid) is killed" do
    m = marker()
    {out, 0} = MuonTrap.cmd(helper(), ["daemonize", m])
    pid = out |> String.trim() |> String.to_integer()
    wait_all_dead([pid])
    assert pids_matching(m) == []
  end

  test "after cmd/3 times out: the whole escapist tree is gone" do
    m = marker()
    parent = self()

    task =
      Task.async(fn ->
        MuonTrap.cmd("sh", ["-c", escapist(m)],
          timeout: 60_000,
          delay_to_sigkill: 100,
          into: %Collect{to: parent}
        )
      end)

    wait_for_escapist(m)
    # Terminate through the timeout path by killing the command itself:
    # the helper the shell execs (the shell's own command line names it
    # too, until the exec).
    sleeper = wait_until(fn -> sleeper(m) end, 10_000, "the shell to exec the sleeping helper")
    System.cmd("kill", ["-KILL", "#{sleeper}"])
    assert {_, 137} = Task.await(task, 15_000)
    assert_nothing_left(m)
  end

  test "a bounded fork bomb is killed" do
    m = marker()
    # The root exits at once, so the port kills the tree while it grows.
    {out, 0} = MuonTrap.cmd(helper(), ["fork_bomb", "4", "exit", m])
    assert out == "ready\n"
    assert_nothing_left(m)
  end

  test "after the calling process is killed" do
    m = marker()
    parent = self()

    caller =
      spawn(fn ->
        MuonTrap.cmd("sh", ["-c", escapist(m)], delay_to_sigkill: 100, into: %Collect{to: parent})
      end)

    wait_for_escapist(m)
    Process.exit(caller, :kill)
    assert_nothing_left(m)
  end

  test "after a Daemon stops" do
    m = marker()

    capture_log(fn ->
      {:ok, pid} = Daemon.start_link("sh", ["-c", escapist(m)], delay_to_sigkill: 100)
      wait_for_escapist(m)
      GenServer.stop(pid)
      # stop/1 returns only once everything is gone.
      assert helpers(m) == []
      assert_nothing_left(m)
    end)
  end

  test "after the BEAM running a Daemon is SIGKILLed" do
    m = marker()
    ebin = Path.join([Mix.Project.build_path(), "lib", "muontrap", "ebin"])

    script = """
    {:ok, _} = MuonTrap.Daemon.start_link("sh", ["-c", #{inspect(escapist(m))}], delay_to_sigkill: 100)
    IO.puts("beam " <> System.pid())
    Process.sleep(:infinity)
    """

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        {:line, 1024},
        args: ["-pa", ebin, "-e", script]
      ])

    beam =
      receive do
        {^port, {:data, {:eol, "beam " <> pid}}} -> pid
      after
        30_000 -> flunk("the other BEAM did not start")
      end

    # Never leave the other BEAM behind, even if an assertion below fails.
    on_exit(fn -> System.cmd("kill", ["-KILL", beam], stderr_to_stdout: true) end)

    wait_for_escapist(m)
    port_binaries = port_binaries_matching(m)
    assert port_binaries != []
    {_, 0} = System.cmd("kill", ["-KILL", beam])
    assert_receive {^port, {:exit_status, _}}, 10_000
    assert_nothing_left(m, port_binaries)
  end

  defp cmdline(pid) do
    case File.read("/proc/#{pid}/cmdline") do
      {:ok, text} -> String.replace(text, <<0>>, " ")
      _ -> ""
    end
  end

  # Found through their programs: a port binary's command line holds none.
  defp port_binaries_matching(m), do: MuonTrap.Test.Faults.port_binaries_matching(m)
end
