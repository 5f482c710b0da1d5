defmodule MuonTrap.FaultsKillTest do
  # The port binary and the command SIGKILLed at each stage, without a
  # cgroup: before STARTED (the port waits for its pipes), while the output
  # streams, while the port stops the command. Each ends with a clear error
  # or a clean exit, nothing left in /proc, and the BEAM's descriptors back
  # to their baseline (so not async). Without a cgroup the command cannot
  # be held before STARTED (it runs microseconds after its spawn); with one
  # it can: faults_kill_cgroup_test.exs. The BEAM: faults_beam_kill_test.exs.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess}
  import MuonTrap.Test.Spawner, only: [standbys: 1]

  alias MuonTrap.{Daemon, Options, Run}

  @port_died "muontrap: the command's supervisor exited unexpectedly"

  # The stop sequence's SIGTERM to SIGKILL: long enough that a kill lands
  # while the port is stopping, short enough for a test.
  @stop_delay 5_000

  defp drive(run) do
    case Run.next(run) do
      {:data, _stream, _chunks, run} -> drive(run)
      {:error, error, run} -> {:error, error, run}
      {other, _status_or_queued, run} -> {other, run}
    end
  end

  # A command streaming lines of `m` into the test, read by a task.
  defp streaming(m, opts \\ []) do
    parent = self()
    collect = %Collect{to: parent, max: 1_000}

    task =
      Task.async(fn ->
        try do
          MuonTrap.cmd(helper(), ["repeat", "#{m}\n", "0"], [into: collect] ++ opts)
        rescue
          e in MuonTrap.Error -> {:raised, e.message}
        end
      end)

    assert_receive {:collected, first}, 15_000
    {task, first}
  end

  # Beside the faults, a command whose every byte must arrive, to its own caller.
  defp bystander do
    n = 3_000_000
    Task.async(fn -> MuonTrap.cmd(helper(), ["print_bytes", "#{n}"]) == {pattern(n), 0} end)
  end

  # Every line is the marker; a command killed mid-write may leave the
  # start of one more.
  defp only_lines_of?(out, m) do
    {lines, [last]} = out |> String.split("\n") |> Enum.split(-1)
    Enum.all?(lines, &(&1 == m)) and String.starts_with?(m, last)
  end

  defp collected(acc) do
    receive do
      {:collected, data} -> collected(acc <> data)
    after
      0 -> acc
    end
  end

  # cmd/3 times out, leaving the port to stop the command, which traps SIGTERM.
  defp timed_out_and_stopping(m) do
    file = tmp_file(m)
    on_exit(fn -> File.rm(file) end)

    assert {"up\n", :timeout} =
             MuonTrap.cmd("sh", ["-c", stopping_command(file)],
               timeout: 500,
               delay_to_sigkill: @stop_delay
             )

    wait_until(fn -> File.exists?(file) end, 10_000, "the stop's SIGTERM")
    port_binary(m)
  end

  describe "the port binary SIGKILLed" do
    test "before its supervisor exists (the spawner SIGKILLed with the request queued): a clear error" do
      m = fault_marker()
      {"", 0} = MuonTrap.cmd("true", [])
      fds = fd_count()
      spawner = MuonTrap.Nif.spawner_pid()
      # Its standby, which would take the request, is stopped too.
      [standby] = wait_until(fn -> match?([_], s = standbys(spawner)) && s end)
      for pid <- [standby, spawner], do: signal(pid, "STOP")
      run = Run.start(Options.validate(:cmd, helper(), ["sleep", m], []))
      # The request waits in the socket of the stopped spawner and
      # standby; their death frees the channel's other end unread.
      for pid <- [standby, spawner], do: signal(pid, "KILL")
      assert {:error, @port_died, run} = drive(run)
      Run.stop(run)
      # The next start starts a new spawner.
      assert MuonTrap.cmd("echo", [m]) == {"#{m}\n", 0}
      assert MuonTrap.Nif.spawner_pid() != spawner
      assert_nothing_left(m)
      assert_fds_back(fds)
    end

    test "while streaming: the caller gets a clear error, the command dies, others are unaffected" do
      m = fault_marker()
      fds = fd_count()
      others = bystander()
      {task, first} = streaming(m)
      signal(started_port_binary(m), "KILL")
      assert {:raised, @port_died} = Task.await(task, 15_000)
      assert only_lines_of?(collected(first), m)
      assert Task.await(others, 30_000)
      assert_nothing_left(m)
      assert_fds_back(fds)
    end

    test "while stopping after a timeout: the command dies at once" do
      m = fault_marker()
      fds = fd_count()
      signal(timed_out_and_stopping(m), "KILL")
      # PR_SET_PDEATHSIG, not the stop delay.
      wait_until(fn -> all_pids_matching(m) == [] end, @stop_delay - 1_000, "nothing left")
      assert_fds_back(fds)
    end

    test "while a daemon stops: the stop returns and the command dies" do
      m = fault_marker()
      file = tmp_file(m)
      on_exit(fn -> File.rm(file) end)
      fds = fd_count()
      parent = self()

      capture_log(fn ->
        {:ok, daemon} =
          Daemon.start_link("sh", ["-c", stopping_command(file)],
            delay_to_sigkill: @stop_delay,
            logger_fun: &send(parent, {:line, &1})
          )

        # Its SIGTERM trap is set.
        assert_receive {:line, "up"}, 15_000

        command_pid(daemon)
        port = Daemon.os_pid(daemon)
        stop = Task.async(fn -> :timer.tc(fn -> GenServer.stop(daemon) end) end)
        wait_until(fn -> File.exists?(file) end, 10_000, "the stop's SIGTERM")
        signal(port, "KILL")
        assert {us, :ok} = Task.await(stop, 30_000)
        assert div(us, 1000) < @stop_delay
        assert_nothing_left(m)
      end)

      assert_fds_back(fds)
    end
  end

  describe "the command SIGKILLed" do
    test "while streaming: the caller gets the output and status 137" do
      m = fault_marker()
      fds = fd_count()
      others = bystander()
      {task, first} = streaming(m)
      [command] = pids_matching(m)
      signal(command, "KILL")
      assert {%Collect{}, 137} = Task.await(task, 15_000)
      assert only_lines_of?(collected(first), m)
      assert Task.await(others, 30_000)
      assert_nothing_left(m)
      assert_fds_back(fds)
    end

    test "while stopping after a timeout: the port binary finishes at once" do
      m = fault_marker()
      fds = fd_count()
      port = timed_out_and_stopping(m)
      [command] = pids_matching(m)
      signal(command, "KILL")
      wait_all_dead([port], @stop_delay - 1_000)
      assert_nothing_left(m)
      assert_fds_back(fds)
    end

    test "while a daemon stops: the stop returns before the SIGKILL delay" do
      m = fault_marker()
      file = tmp_file(m)
      on_exit(fn -> File.rm(file) end)
      fds = fd_count()
      parent = self()

      capture_log(fn ->
        {:ok, daemon} =
          Daemon.start_link("sh", ["-c", stopping_command(file)],
            delay_to_sigkill: @stop_delay,
            logger_fun: &send(parent, {:line, &1})
          )

        # Its SIGTERM trap is set.
        assert_receive {:line, "up"}, 15_000

        command = command_pid(daemon)
        stop = Task.async(fn -> :timer.tc(fn -> GenServer.stop(daemon) end) end)
        wait_until(fn -> File.exists?(file) end, 10_000, "the stop's SIGTERM")
        signal(command, "KILL")
        assert {us, :ok} = Task.await(stop, 30_000)
        assert div(us, 1000) < @stop_delay
        assert_nothing_left(m)
      end)

      assert_fds_back(fds)
    end
  end
end
