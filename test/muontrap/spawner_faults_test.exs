defmodule MuonTrap.SpawnerFaultsTest do
  # A command's supervisor SIGKILLed (the OOM killer, a user) while the
  # output streams and while it stops the command, without a cgroup: the
  # command dies with it (PR_SET_PDEATHSIG) and the BEAM kills what is
  # left of its process group, here two background children that would
  # otherwise live on. The caller gets one clear error, a daemon stops
  # with :muontrap_supervisor_died. (Before STARTED: the spawner killed
  # with the request queued, faults_kill_test.exs.)
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess, Spawner}

  alias MuonTrap.Daemon

  @moduletag timeout: 120_000

  # Long enough that only the supervisor's death can explain a quick end.
  @stop_delay 20_000

  # Two background children in the command's process group, deaf to the
  # stop's SIGTERM, then `tail` in the shell itself.
  defp family(m, tail),
    do: "trap '' TERM; #{helper()} sleep #{m} & #{helper()} sleep #{m} & #{tail}"

  # The supervisor running `m`'s command, once it has reported STARTED,
  # and the command's process group once both children and the shell run.
  defp supervisor_and_group(m) do
    sup = started_port_binary(m)
    wait_until(fn -> length(pids_matching(m)) >= 3 end, 15_000, "the command's family")
    [shell] = children(sup)
    pgrp = stat(shell).pgrp
    assert length(in_group(pgrp)) >= 3
    {sup, pgrp}
  end

  defp assert_group_gone(pgrp, within) do
    wait_until(fn -> in_group(pgrp) == [] end, within, fn ->
      "process group #{pgrp} to be gone: #{inspect(in_group(pgrp))}"
    end)
  end

  defp raised(fun) do
    fun.()
  rescue
    e in MuonTrap.Error -> {:raised, e.message}
  end

  describe "while streaming" do
    test "cmd/3: one error, nothing of the process group left" do
      m = fault_marker()
      parent = self()
      script = family(m, "exec #{helper()} repeat #{m} 0")

      task =
        Task.async(fn ->
          raised(fn ->
            MuonTrap.cmd("sh", ["-c", script], into: %Collect{to: parent, max: 1_000})
          end)
        end)

      assert_receive {:collected, _}, 15_000
      {sup, pgrp} = supervisor_and_group(m)
      signal(sup, "KILL")
      assert Task.await(task, 15_000) == {:raised, port_died()}
      assert_group_gone(pgrp, 10_000)
      assert_nothing_left(m)
    end

    test "stream!/3: one error from the stream, nothing of the process group left" do
      m = fault_marker()
      parent = self()
      script = family(m, "exec #{helper()} repeat #{m} 0")

      task =
        Task.async(fn ->
          raised(fn ->
            MuonTrap.stream!("sh", ["-c", script])
            |> Stream.each(&send(parent, {:chunk, &1}))
            |> Stream.run()
          end)
        end)

      assert_receive {:chunk, _}, 15_000
      {sup, pgrp} = supervisor_and_group(m)
      signal(sup, "KILL")
      assert Task.await(task, 15_000) == {:raised, port_died()}
      assert_group_gone(pgrp, 10_000)
      assert_nothing_left(m)
    end

    test "a running daemon stops with :muontrap_supervisor_died" do
      m = fault_marker()
      Process.flag(:trap_exit, true)

      capture_log(fn ->
        {:ok, d} = Daemon.start_link("sh", ["-c", family(m, "exec #{helper()} sleep #{m}")])
        {sup, pgrp} = supervisor_and_group(m)
        assert Daemon.os_pid(d) == sup
        signal(sup, "KILL")
        assert_receive {:EXIT, ^d, :muontrap_supervisor_died}, 15_000
        assert_group_gone(pgrp, 10_000)
        assert_nothing_left(m)
      end)
    end
  end

  describe "while stopping a SIGTERM-ignoring command" do
    test "cmd/3 after its :timeout: the group is gone long before the SIGKILL delay" do
      m = fault_marker()
      file = tmp_file(m)
      on_exit(fn -> File.rm(file) end)
      script = family(m, stopping_command(file))

      assert {"up\n", :timeout} =
               MuonTrap.cmd("sh", ["-c", script], timeout: 1_000, delay_to_sigkill: @stop_delay)

      wait_until(fn -> File.exists?(file) end, 10_000, "the stop's SIGTERM")
      {sup, pgrp} = supervisor_and_group(m)
      signal(sup, "KILL")
      assert_group_gone(pgrp, div(@stop_delay, 2))
      assert_nothing_left(m)
    end

    test "a daemon's stop: it returns, and the group is gone, long before the SIGKILL delay" do
      m = fault_marker()
      file = tmp_file(m)
      on_exit(fn -> File.rm(file) end)
      parent = self()

      capture_log(fn ->
        {:ok, d} =
          Daemon.start_link("sh", ["-c", family(m, stopping_command(file))],
            delay_to_sigkill: @stop_delay,
            logger_fun: &send(parent, {:line, &1})
          )

        assert_receive {:line, "up"}, 15_000
        {sup, pgrp} = supervisor_and_group(m)
        stop = Task.async(fn -> :timer.tc(fn -> GenServer.stop(d) end) end)
        wait_until(fn -> File.exists?(file) end, 10_000, "the stop's SIGTERM")
        signal(sup, "KILL")
        assert {us, :ok} = Task.await(stop, @stop_delay + 10_000)
        assert div(us, 1000) < div(@stop_delay, 2)
        assert_group_gone(pgrp, 10_000)
        assert_nothing_left(m)
      end)
    end
  end
end
