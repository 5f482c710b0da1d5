defmodule MuonTrap.DaemonOutputTest do
  # A daemon reads its command's output from a BEAM-owned pipe, like cmd/3:
  # byte-exact counts and lines, flow control by the pipe's capacity, and
  # nothing left behind however the daemon ends.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  defp forward_lines(pid \\ self()), do: fn line -> send(pid, {:line, line}) end

  defp lines_so_far(acc \\ []) do
    receive do
      {:line, l} -> lines_so_far([l | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  for size <- [0, 1, 65_536, 10 * 1024 * 1024] do
    test "output_byte_count and the lines are exact for #{size} bytes" do
      size = unquote(size)

      {:ok, pid} =
        Daemon.start_link(
          "sh",
          ["-c", "#{helper()} print_bytes #{size}; exec #{helper()} sleep"],
          logger_fun: forward_lines()
        )

      wait_until(fn -> Daemon.statistics(pid).output_byte_count == size end, 20_000)
      Process.sleep(50)
      assert Daemon.statistics(pid).output_byte_count == size
      # Stopping hands over the last partial line; lines lose their newlines.
      GenServer.stop(pid)
      text = Enum.join(lines_so_far(), "\n")
      expected = pattern(size)
      assert text == expected or text <> "\n" == expected
    end
  end

  test "statistics/1 stays exact after the daemon stopped counting" do
    {:ok, pid} =
      Daemon.start_link("sh", ["-c", "#{helper()} print_bytes 1; exec #{helper()} sleep"],
        logger_fun: fn _ -> :ok end
      )

    wait_until(fn -> Daemon.statistics(pid).output_byte_count == 1 end)
    assert Daemon.statistics(pid).output_byte_count == 1
    GenServer.stop(pid)
  end

  test "a line longer than 16 KiB is cut into 16 KiB pieces, nothing lost" do
    {:ok, _pid} =
      Daemon.start_link("sh", ["-c", "head -c 40000 /dev/zero | tr '\\0' a; echo; echo next"],
        logger_fun: forward_lines()
      )

    for n <- [16_384, 16_384, 40_000 - 2 * 16_384] do
      assert_receive {:line, line}, 5_000
      assert line == String.duplicate("a", n)
    end

    assert_receive {:line, "next"}, 5_000
  end

  test "an unterminated line longer than 16 KiB is cut too, the rest handed over at exit" do
    {:ok, pid} =
      Daemon.start_link(helper(), ["repeat", "abcde", "100000"], logger_fun: forward_lines())

    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:normal, :noproc], 5_000
    lines = lines_so_far()
    assert Enum.map(lines, &byte_size/1) == List.duplicate(16_384, 6) ++ [100_000 - 6 * 16_384]
    assert IO.iodata_to_binary(lines) == String.duplicate("abcde", 20_000)
  end

  test "a chatty daemon that cannot keep up pauses its command, never buffers" do
    parent = self()
    window = 65_536
    size = 30_000_000 + :rand.uniform(1_000_000)

    # Takes one line, then waits for permission for each next one.
    gate = fn line ->
      send(parent, {:line, self(), byte_size(line)})

      receive do
        :go -> :ok
      end
    end

    {:ok, pid} =
      Daemon.start_link("head", ["-c", "#{size}", "/dev/zero"],
        logger_fun: gate,
        stdio_window: window
      )

    assert_receive {:line, ^pid, _}, 5_000

    [head] =
      wait_until(fn -> match?([_], pids_matching("#{size}")) && pids_matching("#{size}") end)

    wait_until(fn -> blocked_in_write?(head) end, 5_000, "head blocked writing")
    # What head wrote is bounded by the chunk the daemon holds, the part
    # of a line it kept from an earlier chunk (under 16 KiB, the longest
    # line logged), the pipe's capacity and head's own buffer; the
    # daemon's mailbox holds no output. (Without the partial line the
    # bound failed once on a loaded machine: 144 KiB written, the daemon's
    # first read having caught 8 KiB.)
    assert written(head) <= 2 * window + 16_384 + 8192
    {:messages, messages} = Process.info(pid, :messages)
    assert length(messages) <= 2, inspect(messages, limit: 5)
    {:memory, memory} = Process.info(pid, :memory)
    assert memory < 4 * window + 200_000
    Process.unlink(pid)
    Process.exit(pid, :kill)
    wait_all_dead([head])
  end

  test "killing the daemon mid-stream leaves no process and no descriptor" do
    Process.flag(:trap_exit, true)
    parent = self()
    m = marker()
    # The command says which pipe its stdout is, then streams for ever.
    script =
      "readlink /proc/$$/fd/1; #{helper()} fork_many 2 #{m} & exec #{helper()} chatty 0 0 #{m}"

    first_pipe = fn
      "pipe:" <> _ = line -> send(parent, {:pipe, line})
      _ -> :ok
    end

    {:ok, pid} = Daemon.start_link("sh", ["-c", script], logger_fun: first_pipe)

    assert_receive {:pipe, pipe}, 5_000
    assert beam_fds_on(pipe) != []
    wait_until(fn -> length(pids_matching(m)) == 4 end)
    wait_until(fn -> Daemon.statistics(pid).output_byte_count > 100_000 end)
    Process.exit(pid, :kill)
    assert_receive {:EXIT, ^pid, :killed}
    wait_until(fn -> pids_matching(m) == [] end, 10_000, "the daemon's tree to be gone")
    wait_until(fn -> beam_fds_on(pipe) == [] end, 5_000, "the daemon's pipe to be closed")
  end
end
