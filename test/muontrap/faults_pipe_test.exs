defmodule MuonTrap.FaultsPipeTest do
  # Commands that close their stdout early. Not async: the BEAM's
  # descriptor count must come back to its baseline.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Faults, OSProcess}

  alias MuonTrap.{Daemon, ExitError}

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
            logger_fun: fn stream, line -> send(parent, {stream, line}) end
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
