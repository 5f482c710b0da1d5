defmodule MuonTrap.FaultsPipeTest do
  # A full pipe whose caller never reads again, and commands that close
  # their stdout early. The command is paused rather than the caller's
  # mailbox grown, and the :timeout or the caller's death still ends it.
  # Not async: the BEAM's descriptor count must come back to its baseline.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess}

  alias MuonTrap.{Daemon, ExitError}
  alias MuonTrap.Test.FunCollectable

  # A caller that takes the first chunk, tells the test, and never asks
  # for more.
  defp stuck_stream_caller(m, opts) do
    parent = self()

    spawn(fn ->
      MuonTrap.stream!(helper(), ["repeat", "#{m}\n", "0"], opts)
      |> Enum.each(fn _chunk ->
        send(parent, :first_chunk)
        Process.sleep(:infinity)
      end)
    end)
  end

  defp stuck_cmd_caller(m, opts) do
    parent = self()

    block = fn
      _acc, {:cont, _chunk} ->
        send(parent, :first_chunk)
        Process.sleep(:infinity)

      acc, _ ->
        acc
    end

    spawn(fn ->
      MuonTrap.cmd(
        helper(),
        ["repeat", "#{m}\n", "0"],
        [into: %FunCollectable{fun: block}] ++ opts
      )
    end)
  end

  # The command is paused in write(2) on its full pipe, and the caller holds
  # no output: at most a select notice and STARTED wait in its mailbox, and
  # its heap stays small while the command could have written gigabytes.
  defp assert_paused(caller, m) do
    assert_receive :first_chunk, 15_000
    [command] = wait_until(fn -> match?([_], pids_matching(m)) && pids_matching(m) end)
    wait_until(fn -> blocked_in_write?(command) end, 10_000, "the command to block in write(2)")
    written = written(command)

    for _ <- 1..5 do
      Process.sleep(100)
      {:messages, messages} = Process.info(caller, :messages)
      assert no_output_queued?(messages), inspect(messages)
      assert {:total_heap_size, words} = Process.info(caller, :total_heap_size)
      assert words < 1_000_000
    end

    # Nothing more got out of it meanwhile.
    assert written(command) == written
    command
  end

  for {name, start} <- [stream: :stuck_stream_caller, cmd: :stuck_cmd_caller] do
    test "#{name}: a full pipe and a caller that never reads: the :timeout still ends the command" do
      m = fault_marker()
      fds = fd_count()
      caller = unquote(start)(m, timeout: 1_000, delay_to_sigkill: 100)
      command = assert_paused(caller, m)
      # The deadline, the caller's grace, then the port's own stop, and its
      # EXIT: the caller still blocks, but nothing is left of the command.
      wait_all_dead([command], 10_000)
      assert_nothing_left(m)
      assert Process.alive?(caller)
      {:messages, messages} = Process.info(caller, :messages)
      assert length(messages) <= 5, inspect(messages)
      Process.exit(caller, :kill)
      assert_nothing_left(m)
      assert_fds_back(fds)
    end

    test "#{name}: a full pipe and a caller that never reads: its death ends the command" do
      m = fault_marker()
      fds = fd_count()
      caller = unquote(start)(m, delay_to_sigkill: 100)
      assert_paused(caller, m)
      Process.exit(caller, :kill)
      assert_nothing_left(m)
      assert_fds_back(fds)
    end
  end

  describe "a command that closes its stdout early" do
    test "and writes to stderr: cmd/3 gets the rest through the merged stream" do
      fds = fd_count()
      script = "echo out; exec 1>&-; echo err >&2; sleep 0.2; echo more >&2; exit 3"

      assert {"out\nerr\nmore\n", 3} = MuonTrap.cmd("sh", ["-c", script], stderr_to_stdout: true)

      assert_fds_back(fds)
    end

    test "and writes to stderr: a separate stderr stream goes on" do
      fds = fd_count()
      script = "echo out; exec 1>&-; sleep 0.2; echo err >&2; exit 3"
      stream = MuonTrap.stream!("sh", ["-c", script], stderr: :separate)

      assert %ExitError{status: 3} = catch_error(Enum.each(stream, &send(self(), {:element, &1})))

      assert_received {:element, {:stdout, "out\n"}}
      assert_received {:element, {:stderr, "err\n"}}
      assert_fds_back(fds)
    end

    test "and keeps running: the :timeout holds, and nothing is left" do
      m = fault_marker()
      fds = fd_count()
      script = "echo out; exec 1>&-; exec #{helper()} sleep #{m}"
      t0 = System.monotonic_time(:millisecond)
      assert {"out\n", :timeout} = MuonTrap.cmd("sh", ["-c", script], timeout: 500)
      assert System.monotonic_time(:millisecond) - t0 < 3_500
      assert_nothing_left(m)
      assert_fds_back(fds)
    end

    test "and keeps running: a daemon logs its stderr, answers, and stops it" do
      m = fault_marker()
      fds = fd_count()
      parent = self()
      script = "echo out; exec 1>&-; echo err >&2; exec #{helper()} sleep #{m}"

      capture_log(fn ->
        {:ok, daemon} =
          Daemon.start_link("sh", ["-c", script],
            log_output: :info,
            log_stderr: :error,
            logger_fun: {:tagged, fn stream, line -> send(parent, {stream, line}) end}
          )

        assert_receive {:stdout, "out"}, 15_000
        assert_receive {:stderr, "err"}, 15_000
        wait_until(fn -> pids_matching(m) != [] end)
        assert %{state: :running} = Daemon.status(daemon)
        assert Daemon.statistics(daemon).output_byte_count == 8
        GenServer.stop(daemon)
        assert pids_matching(m) == []
      end)

      assert_nothing_left(m)
      assert_fds_back(fds)
    end
  end
end
