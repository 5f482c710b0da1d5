defmodule Mix.Tasks.Muontrap.Bench.InputSection do
  @moduledoc false
  # Section "input": MuonTrap.cmd/3's `:input` written to `cat`, whose
  # output comes back into a byte counter, against System.cmd/3 running
  # `sh -c "cat FILE"` on a file with the same bytes (System.cmd/3 cannot
  # write a command's stdin). Every byte must come back.

  import Mix.Tasks.Muontrap.Bench.Measure, only: [interleaved: 3]
  import Mix.Tasks.Muontrap.Bench.Report, only: [row: 7]

  alias Mix.Tasks.Muontrap.Bench.Counter

  @mb 1_000_000
  @chunk 65_536
  @window 262_144

  def section("input", cfg) do
    {label, size} = if cfg.quick, do: {"10 MB", 10 * @mb}, else: {"100 MB", 100 * @mb}
    data = data(size)
    file = Path.join(System.tmp_dir!(), "muontrap_bench_input")
    File.write!(file, data)

    try do
      rows(label, size, data, file, cfg.reps)
    after
      _ = File.rm(file)
    end
  end

  # The three cases take turns, so a change in load hits each alike.
  defp rows(label, size, data, file, reps) do
    [{sys, sys_mem}, {bin, bin_mem}, {lazy, lazy_mem}] =
      interleaved(reps, size, [
        {:system_cat_file, fn -> System.cmd("sh", ["-c", "cat '#{file}'"], into: %Counter{}) end},
        {:input_binary, fn -> MuonTrap.cmd("cat", [], input: data, into: %Counter{}) end},
        {:input_lazy, fn -> MuonTrap.cmd("cat", [], input: chunks(data), into: %Counter{}) end}
      ])

    # The binary is off-heap (refc): the caller's heap stays small. A lazy
    # enumerable holds at most a chunk being written besides a window read.
    warn_heap("binary input", bin_mem, @window)
    warn_heap("lazy input", lazy_mem, @window + @chunk)

    [
      row("input", "#{label} System.cmd/3, sh -c \"cat FILE\"", "MB/s", sys, nil, true,
        mem: sys_mem
      ),
      row("input", "#{label} input: binary, cat", "MB/s", bin, sys, true, mem: bin_mem),
      row("input", "#{label} input: lazy 64 KiB chunks, cat", "MB/s", lazy, sys, true,
        mem: lazy_mem
      )
    ]
  end

  # `size` bytes of a repeated 16-byte pattern, one refc binary.
  defp data(size) do
    "0123456789abcdef"
    |> :binary.copy(div(size, 16) + 1)
    |> binary_part(0, size)
  end

  # The same bytes as a lazy enumerable of 64 KiB binaries (sub-binaries
  # of `data`, so nothing is copied to make them).
  defp chunks(data) do
    size = byte_size(data)

    Stream.unfold(0, fn
      off when off >= size -> nil
      off -> {binary_part(data, off, min(@chunk, size - off)), off + @chunk}
    end)
  end

  defp warn_heap(what, %{heap: heap}, bound) do
    if heap > bound,
      do: IO.puts("warning: #{what}: caller heap #{heap} bytes, over #{bound} expected")
  end
end
