defmodule MuonTrap.DaemonStderrTest do
  # A daemon's stderr: with log_stderr on a pipe of its own and logged at
  # its level, merged or alone as in MuonTrap 2.0 otherwise; logger_fun:
  # {:tagged, fun} is told which stream each line came from. Real commands write real
  # pipes; the descriptors the command holds are checked in /proc.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  defmodule Sink do
    @moduledoc false
    def line(line, pid, tag), do: send(pid, {tag, line})
  end

  defp forward(pid \\ self()), do: {:tagged, fn stream, line -> send(pid, {stream, line}) end}

  # A command that writes one line to each stream, then sleeps until
  # stopped (so its descriptors can be looked at). Each test has its own
  # words: logs of the other tests, running at the same time, never match.
  defp out_err_sleep(out, err),
    do: ["-c", "echo \"$1\"; echo \"$2\" >&2; exec #{helper()} sleep", "sh", out, err]

  defp words do
    m = marker()
    {"out#{m}", "err#{m}"}
  end

  defp fd_link(os_pid, fd) do
    {:ok, link} = File.read_link("/proc/#{os_pid}/fd/#{fd}")
    link
  end

  # Once the command runs the helper, its descriptors are the final ones.
  defp helper_pid(daemon) do
    pid = command_pid(daemon)

    wait_until(fn ->
      case File.read("/proc/#{pid}/cmdline") do
        {:ok, cmdline} -> hd(String.split(cmdline, <<0>>)) == helper()
        _ -> false
      end
    end)

    pid
  end

  defp stop_and_check(daemon, pipes \\ []) do
    pids = [Daemon.os_pid(daemon), command_pid(daemon)]
    GenServer.stop(daemon)
    wait_all_dead(pids)

    for pipe <- pipes,
        do: wait_until(fn -> beam_fds_on(pipe) == [] end, 5_000, "the BEAM to close #{pipe}")
  end

  # A short command's daemon may be gone before os_pid/1 is asked.
  defp await_normal_exit(daemon) do
    ref = Process.monitor(daemon)

    supervisor =
      try do
        Daemon.os_pid(daemon)
      catch
        :exit, _gone -> nil
      end

    # Linked to this test: one already gone (:noproc) exited normally.
    assert_receive {:DOWN, ^ref, :process, ^daemon, reason} when reason in [:normal, :noproc],
                   10_000

    if is_integer(supervisor), do: wait_all_dead([supervisor])
  end

  # The levels of the log lines that contain `text`.
  defp levels_of(log, text) do
    for line <- String.split(log, "\n"), String.contains?(line, text) do
      [_, level] = Regex.run(~r/\[(\w+)\]/, line)
      level
    end
  end

  describe "log_stderr" do
    test "with log_output: stdout at its level, stderr at log_stderr's, on two pipes" do
      {out, err} = words()

      log =
        capture_log(fn ->
          {:ok, pid} =
            Daemon.start_link("sh", out_err_sleep(out, err),
              log_output: :info,
              log_stderr: :error
            )

          wait_until(fn -> Daemon.statistics(pid).output_byte_count == 2 * byte_size(out) + 2 end)
          child = helper_pid(pid)
          [stdout, stderr] = [fd_link(child, 1), fd_link(child, 2)]
          assert "pipe:" <> _ = stdout
          assert "pipe:" <> _ = stderr
          assert stdout != stderr
          assert beam_fds_on(stdout) != [] and beam_fds_on(stderr) != []
          stop_and_check(pid, [stdout, stderr])
        end)

      assert levels_of(log, "sh: " <> out) == ["info"]
      assert levels_of(log, "sh: " <> err) == ["error"]

      # Filtered at :error, only stderr is left.
      {out, err} = words()

      log =
        capture_log([level: :error], fn ->
          {:ok, pid} =
            Daemon.start_link("sh", out_err_sleep(out, err),
              log_output: :info,
              log_stderr: :error
            )

          wait_until(fn -> Daemon.statistics(pid).output_byte_count == 2 * byte_size(out) + 2 end)
          stop_and_check(pid)
        end)

      refute log =~ out
      assert log =~ "sh: " <> err
    end

    test "alone: only stderr is captured and logged, stdout goes to /dev/null" do
      {out, err} = words()

      log =
        capture_log(fn ->
          {:ok, pid} = Daemon.start_link("sh", out_err_sleep(out, err), log_stderr: :warning)
          child = helper_pid(pid)
          assert fd_link(child, 1) == "/dev/null"
          stderr = fd_link(child, 2)
          assert "pipe:" <> _ = stderr
          wait_until(fn -> Daemon.statistics(pid).output_byte_count == byte_size(err) + 1 end)
          # Bounded wait to show stdout is not counted either (it is not read).
          Process.sleep(50)
          assert Daemon.statistics(pid).output_byte_count == byte_size(err) + 1
          stop_and_check(pid, [stderr])
        end)

      assert levels_of(log, err) == ["warning"]
      refute log =~ out
    end

    test "logger_fun: {:tagged, fun} gets {:stdout, line} and {:stderr, line} and nothing is logged" do
      {out, err} = words()

      log =
        capture_log(fn ->
          {:ok, pid} =
            Daemon.start_link("sh", out_err_sleep(out, err),
              log_stderr: :error,
              log_output: :info,
              logger_fun: forward()
            )

          assert_receive {:stdout, ^out}
          assert_receive {:stderr, ^err}
          stop_and_check(pid)
        end)

      refute log =~ out
      refute log =~ err
      refute_received {_, _}

      # log_stderr with logger_fun and no log_output: both streams still.
      {out, err} = words()

      {:ok, pid} =
        Daemon.start_link("sh", out_err_sleep(out, err), log_stderr: :error, logger_fun: forward())

      assert_receive {:stdout, ^out}
      assert_receive {:stderr, ^err}
      stop_and_check(pid)
    end

    test "{m, f, a} and 1-arity logger_funs get each line of both streams" do
      {out, err} = words()

      {:ok, pid} =
        Daemon.start_link("sh", out_err_sleep(out, err),
          log_stderr: :error,
          logger_fun: {Sink, :line, [self(), :mfa]}
        )

      assert_receive {:mfa, ^out}
      assert_receive {:mfa, ^err}
      stop_and_check(pid)

      {out, err} = words()
      test = self()

      {:ok, pid} =
        Daemon.start_link("sh", out_err_sleep(out, err),
          log_stderr: :error,
          logger_fun: &send(test, {:one, &1})
        )

      assert_receive {:one, ^out}
      assert_receive {:one, ^err}
      stop_and_check(pid)
      refute_received {_, _}
    end

    test "with capture_stderr_only: stderr alone, logged at log_stderr's level" do
      {out, err} = words()

      log =
        capture_log(fn ->
          {:ok, pid} =
            Daemon.start_link("sh", out_err_sleep(out, err),
              capture_stderr_only: true,
              log_output: :info,
              log_stderr: :error
            )

          assert fd_link(helper_pid(pid), 1) == "/dev/null"
          wait_until(fn -> Daemon.statistics(pid).output_byte_count == byte_size(err) + 1 end)
          stop_and_check(pid)
        end)

      assert levels_of(log, err) == ["error"]
      refute log =~ out
    end

    test "with stderr_to_stdout: true is an ArgumentError at start_link" do
      assert_raise ArgumentError, ~r/log_stderr/, fn ->
        Daemon.start_link("echo", [], log_stderr: :error, stderr_to_stdout: true)
      end

      # capture_stderr_only wins over stderr_to_stdout, so nothing contradicts.
      assert {:ok, pid} =
               Daemon.start_link("true", [],
                 log_stderr: :error,
                 stderr_to_stdout: true,
                 capture_stderr_only: true
               )

      ref = Process.monitor(pid)

      assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:normal, :noproc],
                     5_000

      assert_raise ArgumentError, ~r/log_stderr/, fn ->
        Daemon.start_link("echo", [], log_stderr: :loud)
      end

      # Nothing else was started.
      refute_received {:EXIT, _, _}
    end

    test "output_byte_count counts both streams" do
      {:ok, pid} =
        Daemon.start_link("sh", out_err_sleep("out", "err"),
          log_stderr: :debug,
          logger_fun: {:tagged, fn _, _ -> :ok end}
        )

      wait_until(fn -> Daemon.statistics(pid).output_byte_count == 8 end)
      # Bounded: nothing more comes.
      Process.sleep(50)
      assert Daemon.statistics(pid).output_byte_count == 8
      stop_and_check(pid)
    end

    test "lots on both pipes at once: neither blocks the other, every byte counted" do
      n = 3_000_000
      counts = :counters.new(2, [])

      count = fn
        :stdout, line -> :counters.add(counts, 1, byte_size(line) + 1)
        :stderr, line -> :counters.add(counts, 2, byte_size(line) + 1)
      end

      script = "#{helper()} print_bytes #{n} >&2 & #{helper()} print_bytes #{n}; wait"

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", script], log_stderr: :info, logger_fun: {:tagged, count})

      await_normal_exit(pid)
      # Each stream's last partial line is handed over at exit, so both
      # counts come to n plus at most the newline added to that line.
      assert :counters.get(counts, 1) in [n, n + 1]
      assert :counters.get(counts, 2) in [n, n + 1]
    end
  end

  describe "without log_stderr, as in MuonTrap 2.0" do
    test "capture_stderr_only: {:tagged, fun} lines are tagged :stderr" do
      {out, err} = words()

      {:ok, pid} =
        Daemon.start_link("sh", out_err_sleep(out, err),
          capture_stderr_only: true,
          logger_fun: forward()
        )

      assert_receive {:stderr, ^err}
      assert fd_link(helper_pid(pid), 1) == "/dev/null"
      stop_and_check(pid)
      refute_received {_, _}
    end

    test "capture_stderr_only wins over stderr_to_stdout" do
      {out, err} = words()

      {:ok, pid} =
        Daemon.start_link("sh", out_err_sleep(out, err),
          capture_stderr_only: true,
          stderr_to_stdout: true,
          logger_fun: forward()
        )

      assert_receive {:stderr, ^err}
      stop_and_check(pid)
      refute_received {_, _}
    end

    test "stderr_to_stdout: both streams tagged :stdout, in order, on one pipe" do
      {out, err} = words()

      {:ok, pid} =
        Daemon.start_link("sh", out_err_sleep(out, err),
          stderr_to_stdout: true,
          logger_fun: forward()
        )

      assert_receive {:stdout, first}
      assert_receive {:stdout, second}
      assert [first, second] == [out, err]
      child = helper_pid(pid)
      assert fd_link(child, 1) == fd_link(child, 2)
      stop_and_check(pid, [fd_link(child, 1)])
    end
  end

  describe "a partial last line on stderr" do
    test "is logged when the command exits" do
      {out, err} = words()

      log =
        capture_log(fn ->
          {:ok, pid} =
            Daemon.start_link("sh", ["-c", "printf \"$1\"; printf \"$2\" >&2", "sh", out, err],
              log_output: :info,
              log_stderr: :error
            )

          await_normal_exit(pid)
        end)

      assert levels_of(log, "sh: " <> out) == ["info"]
      assert levels_of(log, "sh: " <> err) == ["error"]

      {_out, err} = words()

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", "echo first >&2; printf \"$1\" >&2", "sh", err],
          log_stderr: :error,
          logger_fun: forward()
        )

      await_normal_exit(pid)
      assert_received {:stderr, "first"}
      assert_received {:stderr, ^err}
    end

    test "alone on stderr (log_stderr only), at exit" do
      {_out, err} = words()

      log =
        capture_log(fn ->
          {:ok, pid} =
            Daemon.start_link("sh", ["-c", "printf \"$1\" >&2", "sh", err], log_stderr: :error)

          await_normal_exit(pid)
        end)

      assert levels_of(log, "sh: " <> err) == ["error"]
    end

    test "is logged when the daemon is stopped" do
      {_out, err} = words()

      {:ok, pid} =
        Daemon.start_link(
          "sh",
          ["-c", "printf \"$1\" >&2; exec #{helper()} sleep", "sh", err],
          log_stderr: :error,
          log_output: :info,
          logger_fun: forward()
        )

      wait_until(fn -> Daemon.statistics(pid).output_byte_count == byte_size(err) end)
      refute_received {:stderr, _}
      stop_and_check(pid)
      assert_received {:stderr, ^err}
    end
  end
end
