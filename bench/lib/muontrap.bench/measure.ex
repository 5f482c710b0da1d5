defmodule Mix.Tasks.Muontrap.Bench.Measure do
  @moduledoc false
  # Measurement helpers: repeated timings, min/median/max, throughput with
  # a sampler of the caller's mailbox and heap and the port's RSS, and the
  # bench/floor.c program.

  alias Mix.Tasks.Muontrap.Bench.{Counter, Procs}

  @windows [1024, 10_240, 65_536, 262_144, 1_048_576]

  @doc "The `:stdio_window` sizes of the sweep (and of the plot's x axis)."
  def windows, do: @windows

  @doc "`{min, median, max}` of `n` timings of `fun` in µs, after one warm-up call."
  def times(n, fun) do
    _ = fun.()

    for(_ <- 1..n, do: elem(:timer.tc(fun), 0))
    |> stats()
  end

  def stats(samples) do
    sorted = Enum.sort(samples)
    {hd(sorted), Enum.at(sorted, div(length(sorted), 2)), List.last(sorted)}
  end

  @doc """
  Streams `size` bytes of `head -c` through System.cmd/3 (`:system`),
  bench/floor.c (`{:floor, path}`) or MuonTrap.cmd/3 with window `how`
  (`:default` or an integer) into a byte counter (or `into`).
  """
  def throughput(reps, size, how, into \\ :counter) do
    args = ["-c", "#{size}", "/dev/zero"]
    collectable = fn -> if into == :counter, do: %Counter{}, else: into end

    rate(reps, size, how, fn ->
      case how do
        :system -> System.cmd("head", args, into: collectable.())
        {:floor, fl} -> System.cmd(fl, ["--relay", "head" | args], into: collectable.())
        w -> muontrap_head(args, collectable.(), w)
      end
    end)
  end

  defp muontrap_head(args, into, :default), do: MuonTrap.cmd("head", args, into: into)

  defp muontrap_head(args, into, w),
    do: MuonTrap.cmd("head", args, into: into, stdio_window: w)

  @doc """
  Runs `fun` `reps` times; it must return `{out, 0}` where `out` is a
  Counter, a binary or a byte count, and `size` bytes must have arrived
  (else the task fails, naming `what`). A sampler records the caller's
  peak mailbox and heap and the port binary's peak RSS. Returns the
  MB/s stats and the peaks over all runs.
  """
  def rate(reps, size, what, fun), do: hd(interleaved(reps, size, [{what, fun}]))

  @doc """
  `rate/4` for several `{what, fun}` cases whose runs take turns (one run
  of each per repetition), so that a change in the machine's load hits
  every case alike. One `{stats, peaks}` per case, in order.
  """
  def interleaved(reps, size, cases) do
    runs = for _ <- 1..reps, {what, fun} <- cases, do: {what, rate_once(size, what, fun)}

    for {what, _} <- cases do
      {rates, mems} = Enum.unzip(for {^what, run} <- runs, do: run)
      peak = Enum.reduce(mems, fn a, b -> Map.merge(a, b, fn _, x, y -> max(x, y) end) end)
      {stats(rates), peak}
    end
  end

  defp rate_once(size, what, fun) do
    :erlang.garbage_collect()
    parent = self()

    sampler =
      spawn_link(fn -> sample(parent, %{mailbox: 0, heap: 0, port_rss_kb: 0, tick: 0}) end)

    {us, {out, 0}} = :timer.tc(fun)
    send(sampler, {:stop, self()})
    mem = receive do: ({:sampled, m} -> m)
    bytes = bytes(out)

    if bytes != size,
      do: Mix.raise("#{inspect(what)}: #{bytes} bytes arrived, #{size} expected")

    {size / us, mem}
  end

  defp bytes(%Counter{bytes: bytes}), do: bytes
  defp bytes(binary) when is_binary(binary), do: byte_size(binary)
  defp bytes(n) when is_integer(n), do: n

  defp sample(parent, acc) do
    receive do
      {:stop, from} -> send(from, {:sampled, Map.delete(acc, :tick)})
    after
      2 ->
        acc =
          case Process.info(parent, [:message_queue_len, :total_heap_size]) do
            [message_queue_len: q, total_heap_size: h] ->
              %{
                mailbox: max(acc.mailbox, q),
                heap: max(acc.heap, h * :erlang.system_info(:wordsize)),
                # /proc reads are file operations (a dirty IO scheduler
                # each): every 25th sample, so the sampler costs the
                # measured run little, whichever transport it finds.
                port_rss_kb:
                  if(rem(acc.tick, 25) == 0,
                    do: max(acc.port_rss_kb, port_rss(parent)),
                    else: acc.port_rss_kb
                  ),
                tick: acc.tick + 1
              }

            _ ->
              acc
          end

        sample(parent, acc)
    end
  end

  # The port binary's RSS (a port of the caller), or, with the resident
  # spawner, its supervisors' (one command runs at a time here).
  defp port_rss(parent) do
    supervisors =
      if Procs.spawner_transport?(),
        do:
          MuonTrap.Nif.spawner_pid()
          |> Procs.supervisors()
          |> Enum.map(&Procs.rss_kb/1)
          |> Enum.sum(),
        else: 0

    supervisors + ports_rss(parent)
  end

  defp ports_rss(parent) do
    Port.list()
    |> Enum.filter(&(Port.info(&1, :connected) == {:connected, parent}))
    |> Enum.map(&Port.info(&1, :os_pid))
    |> Enum.map(fn
      {:os_pid, pid} -> Procs.rss_kb(pid)
      _ -> 0
    end)
    |> Enum.sum()
  end

  @doc """
  The floor rows: bench/floor.c, built with the system C compiler, is the
  cheapest possible process between the BEAM and the command. Skipped
  (with a note) where there is no C compiler.
  """
  def floor_rows(%{floor: nil}, _fun), do: []
  def floor_rows(%{floor: floor}, fun), do: [fun.(floor)]

  @doc "Rows of `bench/floor.c --resident` (started once per run), skipped like the floor rows."
  def resident_rows(%{resident: nil}, _fun), do: []
  def resident_rows(%{resident: server}, fun), do: [fun.(server)]

  def build_floor do
    src = Path.expand("../../floor.c", __DIR__)
    out = Path.join(System.tmp_dir!(), "muontrap_bench_floor")

    with cc when is_binary(cc) <- System.find_executable("cc"),
         true <- File.exists?(src),
         {_, 0} <- System.cmd(cc, ["-O2", "-o", out, src], stderr_to_stdout: true) do
      out
    else
      _ ->
        IO.puts("no C compiler (cc) or bench/floor.c: the floor rows are skipped")
        nil
    end
  end
end
