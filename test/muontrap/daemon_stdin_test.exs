defmodule MuonTrap.DaemonStdinTest do
  # A daemon's stdin (`stdin: :pipe`): real commands read what write/3
  # puts in the pipe, a full pipe makes the writer wait and never the
  # daemon, and whatever ends the command, the waiting callers get an
  # answer and no process or descriptor is left behind.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  # A {:tagged, fun} logger_fun that forwards every line, tagged with its stream.
  defp forward(pid \\ self()), do: {:tagged, fn stream, line -> send(pid, {stream, line}) end}

  # The daemon's port binary and command, to check that they are gone at the end.
  defp os_pids(daemon), do: [Daemon.os_pid(daemon), command_pid(daemon)]

  # What the command's descriptor `fd` is (e.g. "pipe:[123]"), once the
  # command has reached the program that uses it.
  defp fd_link(os_pid, fd) do
    {:ok, link} = File.read_link("/proc/#{os_pid}/fd/#{fd}")
    link
  end

  # True once OS process `pid` runs `program` (has exec'd it).
  defp running?(pid, program) do
    case File.read("/proc/#{pid}/cmdline") do
      {:ok, cmdline} -> Path.basename(hd(String.split(cmdline, <<0>>))) == Path.basename(program)
      _ -> false
    end
  end

  defp stop_and_check(daemon, pipes) do
    pids = os_pids(daemon)
    GenServer.stop(daemon)
    wait_all_dead(pids)
    assert_no_fds(pipes)
  end

  defp assert_no_fds(pipes) do
    for pipe <- pipes do
      wait_until(fn -> beam_fds_on(pipe) == [] end, 5_000, "the BEAM to close #{pipe}")
    end
  end

  # The daemon's queued stdin writes: the only way to know, without a
  # sleep, that a concurrent write has reached the daemon.
  defp queued_writes(daemon), do: :queue.len(:sys.get_state(daemon).pipes.stdin.queue)

  describe "cat as the daemon" do
    test "lines written come back in order; close_stdin ends cat and the daemon with :normal" do
      {:ok, pid} = Daemon.start_link("cat", [], stdin: :pipe, logger_fun: forward())

      cat = command_pid(pid)
      wait_until(fn -> running?(cat, "cat") end)
      pipes = [fd_link(cat, 0), fd_link(cat, 1)]
      assert Enum.all?(pipes, &String.starts_with?(&1, "pipe:"))
      # The BEAM holds the other end of both.
      assert Enum.all?(pipes, &(beam_fds_on(&1) != []))
      port = Daemon.os_pid(pid)

      assert Daemon.write(pid, "one\n") == :ok
      assert Daemon.write(pid, ["tw", ?o, "\nthr" | "ee\n"]) == :ok
      assert Daemon.write(pid, [["fo"], "ur", [[?\n]]]) == :ok
      assert Daemon.write(pid, "") == :ok
      assert Daemon.write(pid, "five\nsix\n") == :ok

      for line <- ~w(one two three four five six), do: assert_receive({:stdout, ^line})

      ref = Process.monitor(pid)
      assert Daemon.close_stdin(pid) == :ok
      assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 10_000
      refute_received {_, _}
      wait_all_dead([cat, port])
      assert_no_fds(pipes)
    end

    test "iodata that is not iodata raises in the caller, the daemon goes on" do
      {:ok, pid} = Daemon.start_link("cat", [], stdin: :pipe, logger_fun: forward())
      assert_raise ArgumentError, fn -> Daemon.write(pid, [:not_iodata]) end
      assert_raise ArgumentError, fn -> Daemon.write(pid, 42) end
      assert Daemon.write(pid, "still here\n") == :ok
      assert_receive {:stdout, "still here"}
      stop_and_check(pid, [])
    end

    test "a write after close_stdin is {:error, :closed} while the command runs on" do
      m = marker()

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", "cat; exec #{helper()} sleep #{m}"],
          stdin: :pipe,
          logger_fun: forward()
        )

      sh = command_pid(pid)
      stdin = fd_link(sh, 0)
      assert Daemon.write(pid, "before\n") == :ok
      assert_receive {:stdout, "before"}
      assert Daemon.close_stdin(pid) == :ok
      # cat read EOF and exited: the shell went on to the helper.
      wait_until(fn -> running?(sh, helper()) end, 5_000, "cat to exit")
      assert Daemon.write(pid, "after\n") == {:error, :closed}
      assert Daemon.write(pid, "after\n", :infinity) == {:error, :closed}
      # Closing twice is fine.
      assert Daemon.close_stdin(pid) == :ok
      assert Process.alive?(pid)
      refute_received {:stdout, "after"}
      stop_and_check(pid, [stdin])
    end
  end

  test "20 MB through cat in 1 MB writes: no deadlock, every byte counted" do
    # Each line is 1 KiB with its newline; the lines are only counted.
    chunk = :binary.copy(String.duplicate("x", 1023) <> "\n", 1024)
    writes = 20
    total = writes * byte_size(chunk)
    lines = :counters.new(2, [])

    count = fn :stdout, line ->
      :counters.add(lines, 1, 1)
      :counters.add(lines, 2, byte_size(line))
    end

    {:ok, pid} = Daemon.start_link("cat", [], stdin: :pipe, logger_fun: {:tagged, count})
    pids = os_pids(pid)
    started = System.monotonic_time(:millisecond)

    for _ <- 1..writes, do: assert(Daemon.write(pid, chunk, 30_000) == :ok)

    wait_until(fn -> Daemon.statistics(pid).output_byte_count >= total end, 30_000)
    elapsed = System.monotonic_time(:millisecond) - started
    assert Daemon.statistics(pid).output_byte_count == total
    assert :counters.get(lines, 1) == writes * 1024
    assert :counters.get(lines, 2) == total - writes * 1024
    # Loose: a busy 2-core machine does this in well under a second.
    assert elapsed < 30_000

    ref = Process.monitor(pid)
    capture_log(fn -> assert Daemon.close_stdin(pid) == :ok end)
    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 10_000
    wait_all_dead(pids)
  end

  describe "before the launch (wait_for)" do
    test "writes queue and reach the command once it starts" do
      test = self()

      {:ok, pid} =
        Daemon.start_link("cat", [],
          stdin: :pipe,
          logger_fun: forward(),
          wait_for: fn ->
            send(test, {:waiting, self()})
            receive do: (:go -> :ok)
          end
        )

      assert_receive {:waiting, waiter}
      writer = Task.async(fn -> Daemon.write(pid, "early\n", 30_000) end)
      wait_until(fn -> queued_writes(pid) == 1 end, 5_000, "the write to be queued")
      assert Daemon.os_pid(pid) == :error
      send(waiter, :go)
      assert Task.await(writer, 30_000) == :ok
      assert_receive {:stdout, "early"}
      stop_and_check(pid, [])
    end

    test "a write that times out before the launch is {:error, :timeout}" do
      {:ok, pid} =
        Daemon.start_link("cat", [],
          stdin: :pipe,
          wait_for: fn -> receive do: (:never -> :ok) end
        )

      assert Daemon.write(pid, "x", 50) == {:error, :timeout}
      assert queued_writes(pid) == 0
      GenServer.stop(pid)
    end

    test "close_stdin before the launch: the command reads EOF at once" do
      test = self()

      {:ok, pid} =
        Daemon.start_link("cat", [],
          stdin: :pipe,
          wait_for: fn ->
            send(test, {:waiting, self()})
            receive do: (:go -> :ok)
          end
        )

      assert_receive {:waiting, waiter}
      assert Daemon.close_stdin(pid) == :ok
      assert Daemon.write(pid, "late") == {:error, :closed}
      ref = Process.monitor(pid)
      send(waiter, :go)
      assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 10_000
    end
  end

  describe "back-pressure" do
    test "a command that never reads: the write times out, the daemon answers meanwhile" do
      {:ok, pid} = Daemon.start_link(helper(), ["sleep"], stdin: :pipe, logger_fun: forward())

      pids = os_pids(pid)
      stdin = fd_link(Enum.at(pids, 1), 0)
      big = :binary.copy("z", 10 * 1024 * 1024)

      {elapsed, result} = :timer.tc(fn -> Daemon.write(pid, big, 300) end)
      assert result == {:error, :timeout}
      assert elapsed >= 300_000
      assert elapsed < 3_000_000
      # The timed-out write left the queue.
      assert queued_writes(pid) == 0

      # A writer waits on the full pipe; the daemon keeps answering.
      writer = Task.async(fn -> Daemon.write(pid, big, 1_500) end)
      wait_until(fn -> queued_writes(pid) == 1 end, 5_000, "the write to be queued")

      {elapsed, os_pid} = :timer.tc(fn -> Daemon.os_pid(pid) end)
      assert os_pid == hd(pids)
      assert elapsed < 1_000_000

      {elapsed, stats} = :timer.tc(fn -> Daemon.statistics(pid) end)
      assert stats.output_byte_count == 0
      assert elapsed < 1_000_000

      # A short write queues behind the long one and times out with it.
      assert Daemon.write(pid, "x", 100) == {:error, :timeout}
      assert Task.await(writer, 10_000) == {:error, :timeout}
      assert queued_writes(pid) == 0
      stop_and_check(pid, [stdin])
    end

    # A one-page pipe: sized to the window only on Linux (F_SETPIPE_SZ).
    @tag :linux
    test "queued writes from many callers reach the command whole, in the order they came" do
      gate = Path.join(System.tmp_dir!(), "muontrap_gate_#{marker()}")
      on_exit(fn -> File.rm(gate) end)
      # cat starts reading only once the gate file exists: until then the
      # one-page pipe is full and every write waits in the daemon's queue.
      script = "while [ ! -e \"$1\" ]; do sleep 0.01; done; exec cat"

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", script, "sh", gate],
          stdin: :pipe,
          stdio_window: 4096,
          logger_fun: forward()
        )

      pids = os_pids(pid)
      stdin = fd_link(Enum.at(pids, 1), 0)
      # The first fills the pipe and stays queued; each next one is
      # started once the one before is queued, so the order is known.
      lines =
        for k <- 1..6,
            do: String.pad_trailing("w#{k}-", if(k == 1, do: 10_000, else: 3_000), "#{k}")

      writers =
        for {line, k} <- Enum.with_index(lines, 1) do
          writer = Task.async(fn -> Daemon.write(pid, line <> "\n", 30_000) end)
          wait_until(fn -> queued_writes(pid) == k end, 5_000, "write #{k} to be queued")
          writer
        end

      File.write!(gate, "")
      assert Task.await_many(writers, 30_000) == List.duplicate(:ok, 6)
      # Taken in mailbox order: the order cat wrote them in.
      received =
        for _ <- lines do
          assert_receive {:stdout, line}, 10_000
          line
        end

      assert received == lines
      refute_received {:stdout, _}
      stop_and_check(pid, [stdin])
    end

    test "a slow reader: two concurrent writers, every write :ok, each in its order" do
      # The pipe holds one page: most writes wait for the reader.
      {:ok, pid} =
        Daemon.start_link("sh", ["-c", "while read l; do sleep 0.01; echo \"$l\"; done"],
          stdin: :pipe,
          stdio_window: 4096,
          logger_fun: forward()
        )

      pids = os_pids(pid)
      stdin = fd_link(Enum.at(pids, 1), 0)
      n = 15
      # Longer than PIPE_BUF (4096): a line may go into the pipe in parts.
      line = fn who, k -> String.pad_trailing("#{who}-#{k}-", 5000, ".") end

      writers =
        for who <- [:a, :b] do
          Task.async(fn ->
            for k <- 1..n, do: {k, Daemon.write(pid, line.(who, k) <> "\n", 60_000)}
          end)
        end

      for results <- Task.await_many(writers, 70_000),
          do: assert(results == Enum.map(1..n, &{&1, :ok}))

      received =
        for _ <- 1..(2 * n) do
          assert_receive {:stdout, l}, 30_000
          l
        end

      # Every line arrived whole (writes never interleave) and each
      # writer's lines in the order it wrote them.
      for who <- [:a, :b] do
        mine = Enum.filter(received, &String.starts_with?(&1, "#{who}-"))
        assert mine == Enum.map(1..n, &line.(who, &1))
      end

      stop_and_check(pid, [stdin])
    end
  end

  describe "errors" do
    test "{:error, :no_stdin} without stdin: :pipe" do
      for opts <- [[], [stdin: :null]] do
        {:ok, pid} = Daemon.start_link(helper(), ["sleep"], opts)
        assert Daemon.write(pid, "x") == {:error, :no_stdin}
        assert Daemon.write(pid, "") == {:error, :no_stdin}
        assert Daemon.close_stdin(pid) == {:error, :no_stdin}
        child = command_pid(pid)
        # The command's stdin is /dev/null.
        assert fd_link(child, 0) == "/dev/null"
        stop_and_check(pid, [])
      end
    end

    test "{:error, :closed} once the command closed its stdin, while it still runs" do
      # Not the helper: Rust's runtime reopens a closed fd 0 on /dev/null.
      {:ok, pid} =
        Daemon.start_link("sh", ["-c", "readlink /proc/$$/fd/0; exec 0<&-; exec sleep 1000"],
          stdin: :pipe,
          logger_fun: forward()
        )

      assert_receive {:stdout, "pipe:" <> _ = stdin}
      child = command_pid(pid)

      wait_until(
        fn -> running?(child, "sleep") and not File.exists?("/proc/#{child}/fd/0") end,
        5_000,
        "the command to close its stdin"
      )

      assert Daemon.write(pid, "nobody reads\n") == {:error, :closed}
      # Known closed: answered at once from now on.
      assert Daemon.write(pid, "x", :infinity) == {:error, :closed}
      assert Daemon.close_stdin(pid) == :ok
      assert Process.alive?(pid)
      stop_and_check(pid, [stdin])
    end

    test "a waiting write gets {:error, :closed} when the command closes its stdin" do
      # head reads a little and exits; the shell then lets go of stdin too.
      script = "head -c 1000 >/dev/null; exec 0<&-; exec sleep 1000"
      {:ok, pid} = Daemon.start_link("sh", ["-c", script], stdin: :pipe)
      [port, child] = os_pids(pid)
      stdin = fd_link(child, 0)
      {elapsed, result} = :timer.tc(fn -> Daemon.write(pid, :binary.copy("h", 10_000_000)) end)
      assert result == {:error, :closed}
      # Answered when stdin closed, well before the write's 5 s timeout.
      assert elapsed < 4_000_000
      # The shell closed stdin and then went on: the command still runs.
      wait_until(fn -> running?(child, "sleep") end, 5_000, "the shell to exec sleep")
      assert Daemon.write(pid, "x") == {:error, :closed}
      GenServer.stop(pid)
      wait_all_dead([port, child])
      assert_no_fds([stdin])
    end

    test "a write to a daemon that has stopped exits like any GenServer call" do
      Process.flag(:trap_exit, true)
      {:ok, pid} = Daemon.start_link("true", [], stdin: :pipe)
      assert_receive {:EXIT, ^pid, :normal}, 10_000
      assert {:noproc, _} = catch_exit(Daemon.write(pid, "late"))
    end

    test "the command is killed while a write waits: {:error, :closed}, nothing left" do
      Process.flag(:trap_exit, true)

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", "exec #{helper()} sleep"],
          stdin: :pipe,
          logger_fun: forward()
        )

      [port, child] = os_pids(pid)
      stdin = fd_link(child, 0)
      writer = Task.async(fn -> Daemon.write(pid, :binary.copy("k", 10_000_000), 60_000) end)
      wait_until(fn -> queued_writes(pid) == 1 end, 5_000, "the write to be queued")

      log =
        capture_log(fn ->
          System.cmd("kill", ["-KILL", "#{child}"])
          assert Task.await(writer, 10_000) == {:error, :closed}
          assert_receive {:EXIT, ^pid, :error_exit_status}, 10_000
        end)

      assert log =~ "exited with status"
      wait_all_dead([port, child])
      assert_no_fds([stdin])
    end

    test "the port binary is killed while a write waits: {:error, :closed}, nothing left" do
      Process.flag(:trap_exit, true)
      {:ok, pid} = Daemon.start_link(helper(), ["sleep"], stdin: :pipe)
      [port, child] = os_pids(pid)
      stdin = fd_link(child, 0)
      writer = Task.async(fn -> Daemon.write(pid, :binary.copy("k", 10_000_000), 60_000) end)
      wait_until(fn -> queued_writes(pid) == 1 end, 5_000, "the write to be queued")

      System.cmd("kill", ["-KILL", "#{port}"])
      assert Task.await(writer, 10_000) == {:error, :closed}
      assert_receive {:EXIT, ^pid, :muontrap_supervisor_died}, 10_000
      wait_all_dead([port, child])
      assert_no_fds([stdin])
    end

    test "killing the daemon while a write waits leaves no process and no descriptor" do
      Process.flag(:trap_exit, true)
      {:ok, pid} = Daemon.start_link(helper(), ["sleep"], stdin: :pipe, logger_fun: forward())
      [port, child] = os_pids(pid)
      pipes = [fd_link(child, 0), fd_link(child, 1)]
      writer = Task.async(fn -> catch_exit(Daemon.write(pid, :binary.copy("k", 10_000_000))) end)
      wait_until(fn -> queued_writes(pid) == 1 end, 5_000, "the write to be queued")
      Process.exit(pid, :kill)
      assert_receive {:EXIT, ^pid, :killed}
      # The caller is not left hanging: its call exits with the daemon.
      assert {:killed, {GenServer, :call, _}} = Task.await(writer, 10_000)
      # The port binary reads EOF on its stdin and kills the command.
      wait_all_dead([port, child])
      assert_no_fds(pipes)
    end

    test "stopping the daemon answers every queued write with {:error, :closed}" do
      {:ok, pid} = Daemon.start_link(helper(), ["sleep"], stdin: :pipe)
      [_port, child] = os_pids(pid)
      stdin = fd_link(child, 0)
      big = :binary.copy("s", 1_000_000)
      first = Task.async(fn -> Daemon.write(pid, big, 60_000) end)
      wait_until(fn -> queued_writes(pid) == 1 end, 5_000, "the first write to be queued")
      second = Task.async(fn -> Daemon.write(pid, "second", 60_000) end)
      wait_until(fn -> queued_writes(pid) == 2 end, 5_000, "the second write to be queued")
      stop_and_check(pid, [stdin])
      assert Task.await_many([first, second], 10_000) == [{:error, :closed}, {:error, :closed}]
    end
  end
end
