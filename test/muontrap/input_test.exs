defmodule MuonTrap.InputTest do
  # cmd/3's :input: byte-exact through cat at every size, pulled lazily,
  # never a deadlock or a hang, and nothing left when the caller dies.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Test.FunCollectable

  doctest MuonTrap.Input

  # Counts bytes without keeping them, so the caller's heap shows what
  # MuonTrap itself holds.
  defp counter do
    %FunCollectable{
      acc: 0,
      fun: fn
        n, {:cont, data} -> n + byte_size(data)
        n, :done -> n
        _, :halt -> :ok
      end
    }
  end

  for size <- [0, 1, 65_536, 100 * 1024 * 1024] do
    @tag timeout: 120_000
    test "#{size} bytes through cat come back byte-exact" do
      data = :crypto.strong_rand_bytes(unquote(size))
      assert {out, 0} = MuonTrap.cmd("cat", [], input: data)
      assert byte_size(out) == byte_size(data)
      assert out == data
    end
  end

  test "iodata, nested and improper, and a lazy enumerable of iodata" do
    assert {"abcdef", 0} = MuonTrap.cmd("cat", [], input: ["a", [?b, ["c"]] | "def"])
    assert {"x1x2x3", 0} = MuonTrap.cmd("cat", [], input: Stream.map(1..3, &["x", "#{&1}"]))
    assert {"", 0} = MuonTrap.cmd("cat", [], input: [])
    assert {"", 0} = MuonTrap.cmd("cat", [], input: Stream.map([], & &1))
  end

  test "without :input stdin is /dev/null; with it, a pipe" do
    assert {"/dev/null\n", 0} = MuonTrap.cmd("sh", ["-c", "readlink /proc/self/fd/0"])
    assert {"pipe:" <> _, 0} = MuonTrap.cmd("sh", ["-c", "readlink /proc/self/fd/0"], input: "")
  end

  test "an infinite lazy input to a command that reads 10 bytes returns promptly and is halted" do
    test = self()

    infinite =
      Stream.resource(fn -> :open end, fn s -> {["0123456789"], s} end, fn _ ->
        send(test, :input_halted)
      end)

    {{out, 0}, ms} = timed(fn -> MuonTrap.cmd("head", ["-c", "10"], input: infinite) end)
    assert out == "0123456789"
    assert ms < 5_000
    assert_received :input_halted
  end

  test "a lazy input is pulled only as fast as the command reads" do
    pulled = :counters.new(1, [])
    chunk = :binary.copy("z", 1024)
    input = Stream.repeatedly(fn -> :counters.add(pulled, 1, 1) && chunk end)
    script = "head -c 100000 > /dev/null"

    assert {"", 0} = MuonTrap.cmd("sh", ["-c", script], input: input, stdio_window: 65_536)
    # What head read, plus what it may have buffered, a pipeful and a chunk;
    # an eager reader would have pulled for ever.
    assert :counters.get(pulled, 1) * 1024 < 100_000 + 3 * 65_536
  end

  test "input the command never reads does not hang the caller past :timeout" do
    m = marker()
    big = :binary.copy("a", 10_000_000)
    args = ["-c", "exec #{helper()} sleep #{m}"]

    {{"", :timeout}, ms} = timed(fn -> MuonTrap.cmd("sh", args, input: big, timeout: 300) end)
    assert ms < 3_000
    wait_until(fn -> pids_matching(m) == [] end)
  end

  test "a command that exits without reading its input is not an error" do
    assert {"done\n", 0} = MuonTrap.cmd("echo", ["done"], input: :binary.copy("a", 5_000_000))
  end

  test "the caller killed while writing leaves no process and no descriptor" do
    m = marker()
    test = self()
    # The command reads nothing, so the caller is parked on a full stdin.
    caller =
      spawn(fn ->
        MuonTrap.cmd("sh", ["-c", "exec #{helper()} sleep #{m}"],
          input: Stream.repeatedly(fn -> send(test, :pulled) && :binary.copy("q", 65_536) end)
        )
      end)

    assert_receive :pulled, 5_000
    [pid] = wait_until(fn -> match?([_], pids_matching(m)) && pids_matching(m) end)
    {:ok, stdin} = File.read_link("/proc/#{pid}/fd/0")
    assert "pipe:" <> _ = stdin
    wait_until(fn -> beam_fds_on(stdin) != [] end)

    Process.exit(caller, :kill)
    wait_all_dead([pid])
    wait_until(fn -> beam_fds_on(stdin) == [] end, 5_000, "the BEAM to close #{stdin}")
  end

  test "callers killed at random while data flows both ways leave no process or descriptor" do
    m = marker()
    chunk = :binary.copy("0123456789abcdef", 4096)

    callers =
      for i <- 1..8 do
        spawn(fn ->
          MuonTrap.cmd("sh", ["-c", "exec cat - #{m}#{i} 2>/dev/null"],
            input: Stream.repeatedly(fn -> chunk end),
            into: counter()
          )
        end)
      end

    pids = wait_until(fn -> length(pids_matching(m)) == 8 && pids_matching(m) end)

    pipes =
      for pid <- pids,
          fd <- [0, 1],
          {:ok, link} <- [File.read_link("/proc/#{pid}/fd/#{fd}")],
          do: link

    assert length(pipes) == 16

    for caller <- Enum.shuffle(callers) do
      Process.sleep(:rand.uniform(20))
      Process.exit(caller, :kill)
    end

    wait_all_dead(pids)

    wait_until(
      fn -> Enum.all?(pipes, &(beam_fds_on(&1) == [])) end,
      5_000,
      "the BEAM to close the pipes"
    )
  end

  test "the caller's heap and mailbox stay bounded while 50 MB of lazy input flows" do
    caller = self()
    sampler = spawn_link(fn -> sample(caller, {0, 0}) end)
    chunk = :binary.copy("m", 65_536)
    input = Stream.repeatedly(fn -> chunk end) |> Stream.take(800)

    assert {52_428_800, 0} = MuonTrap.cmd("cat", [], input: input, into: counter())
    send(sampler, {:report, self()})
    assert_receive {:max, heap_words, mailbox}, 5_000
    # Loose bounds: a window and a chunk are a few hundred KiB.
    assert heap_words * :erlang.system_info(:wordsize) < 16_000_000
    assert mailbox <= 3
  end

  defp sample(pid, {heap, mailbox} = max) do
    receive do
      {:report, to} -> send(to, {:max, heap, mailbox})
    after
      1 ->
        case Process.info(pid, [:total_heap_size, :message_queue_len]) do
          [total_heap_size: h, message_queue_len: q] ->
            sample(pid, {max(h, heap), max(q, mailbox)})

          nil ->
            sample(pid, max)
        end
    end
  end

  test "bad input raises ArgumentError, also for a bad element found mid-run" do
    assert_raise ArgumentError, ~r/invalid option :input with value :nope/, fn ->
      MuonTrap.cmd("cat", [], input: :nope)
    end

    m = marker()

    assert_raise ArgumentError, ~r/invalid element in option :input: :bad/, fn ->
      MuonTrap.cmd("sh", ["-c", "exec cat #{m} - 2>/dev/null"],
        input: Stream.concat(["ok"], [:bad])
      )
    end

    assert_raise ArgumentError, ~r/invalid element in option :input: \[1000\]/, fn ->
      MuonTrap.cmd("cat", [], input: ["ok", [1000]])
    end

    wait_until(fn -> pids_matching(m) == [] end)
  end

  defp timed(fun) do
    t0 = System.monotonic_time(:millisecond)
    result = fun.()
    {result, System.monotonic_time(:millisecond) - t0}
  end
end
