defmodule Mix.Tasks.Muontrap.Bench.Counter do
  @moduledoc false
  # A Collectable that only counts bytes, so neither side pays for building
  # a 1 GB binary and every byte is still accounted for.
  defstruct bytes: 0

  defimpl Collectable do
    def into(c) do
      {c,
       fn
         acc, {:cont, data} -> %{acc | bytes: acc.bytes + byte_size(data)}
         acc, :done -> acc
         _, :halt -> :ok
       end}
    end
  end
end

defmodule Mix.Tasks.Muontrap.Bench do
  @shortdoc "Benchmarks MuonTrap against System.cmd/3"
  @moduledoc """
  Runs MuonTrap and `System.cmd/3` (the bare BEAM port) side by side in one
  BEAM and prints min/median/max figures and ratios.

      mix muontrap.bench [--quick] [--gb] [--only SECTION] [--out DIR]

    * `--quick` - fewer repetitions, 200 daemons instead of 1,000, no 100 MB
      window sweep (about 30 s)
    * `--gb` - add the 1 GB throughput cases
    * `--only latency|throughput|concurrency|timeout|daemon|cgroup|many|binary` - one section
      (`cgroup` is the cgroup v2 cases of sections 4 and 5; without cgroup v2
      controllers, section 5 on a v1 memory group beneath the BEAM's own)
    * `--out DIR` - where `results.md` and `throughput.svg` go (default
      `bench/`; nothing is written with `--only`)

  Every output byte is counted; the run ends by checking `/proc` that no
  port binary or command it started is left.
  """
  use Mix.Task

  alias MuonTrap.Daemon

  @mb 1_000_000
  @windows [1024, 10_240, 65_536, 262_144, 1_048_576]
  @cg_base "muontrap_bench"

  @impl Mix.Task
  def run(argv) do
    {opts, _} =
      OptionParser.parse!(argv,
        strict: [quick: :boolean, gb: :boolean, only: :string, out: :string]
      )

    Mix.Task.run("compile")
    Logger.configure(level: :warning)
    {:ok, _} = Application.ensure_all_started(:muontrap)

    cfg = %{
      quick: opts[:quick] || false,
      gb: opts[:gb] || false,
      reps: if(opts[:quick], do: 3, else: 7),
      floor: build_floor()
    }

    sections = ~w(latency throughput concurrency timeout daemon cgroup many binary)
    only = opts[:only]
    run? = fn s -> only == nil or only == s end

    IO.puts(
      "MuonTrap benchmark: #{System.schedulers_online()} schedulers, OTP #{System.otp_release()}, " <>
        "Elixir #{System.version()}#{if cfg.quick, do: " (--quick)", else: ""}\n"
    )

    rows =
      Enum.flat_map(sections, fn s ->
        if run?.(s) do
          IO.puts("## #{s}")
          r = section(s, cfg)
          Enum.each(r, &print_row/1)
          IO.puts("")
          r
        else
          []
        end
      end)

    leftovers = leftovers()
    IO.puts("left behind: #{if leftovers == [], do: "nothing", else: inspect(leftovers)}")

    if only == nil do
      out = opts[:out] || "bench"
      File.mkdir_p!(out)
      File.write!(Path.join(out, "results.md"), markdown(rows, cfg, leftovers))
      File.write!(Path.join(out, "throughput.svg"), svg(rows))
      IO.puts("wrote #{out}/results.md and #{out}/throughput.svg")
    end

    if leftovers != [], do: Mix.raise("processes left behind: #{inspect(leftovers)}")
  end

  # A row: %{section, name, unit, stats: {min, med, max}, base: {min, med, max} | nil,
  #          higher_better: bool, extra: string}

  defp section("latency", cfg) do
    n = if cfg.quick, do: 50, else: 300

    Enum.flat_map([{"true", []}, {"echo", ["hi"]}], fn {cmd, args} ->
      sys = times(n, fn -> {_, 0} = System.cmd(cmd, args) end)
      mt = times(n, fn -> {_, 0} = MuonTrap.cmd(cmd, args) end)
      name = "cmd(#{inspect(cmd)}, #{inspect(args)})"

      [row("latency", name, "µs", mt, sys, false)] ++
        floor_rows(cfg, fn floor ->
          fl = times(n, fn -> {_, 0} = System.cmd(floor, [cmd | args]) end)
          row("latency", "floor: #{name} through bench/floor.c", "µs", fl, sys, false)
        end)
    end)
  end

  # How late cmd/3 returns after `timeout: 250` (target: 50 ms), for a
  # command that floods its output and for one that ignores SIGTERM.
  # System.cmd/3 has no timeout to compare with.
  defp section("timeout", cfg) do
    n = if cfg.quick, do: 5, else: 15

    cases = [
      {"yes \"Hello, world!\"", "yes", ["Hello, world!"]},
      {"a SIGTERM-ignoring shell", "sh", ["-c", "trap '' TERM; while :; do sleep 1; done"]}
    ]

    for {name, cmd, args} <- cases do
      overshoot =
        for _ <- 1..n do
          {us, {_, :timeout}} = :timer.tc(fn -> MuonTrap.cmd(cmd, args, timeout: 250) end)
          us / 1000 - 250
        end

      row("timeout", "timeout: 250 overshoot, #{name}", "ms", stats(overshoot), nil, false)
    end
  end

  defp section("throughput", cfg) do
    throughput_rows(cfg) ++
      floor_rows(cfg, fn floor ->
        reps = cfg.reps
        {sys, _} = throughput(reps, 100 * @mb, :system)
        {fl, mem} = throughput(reps, 100 * @mb, {:floor, floor})

        row("throughput", "floor: 100 MB through bench/floor.c --relay", "MB/s", fl, sys, true,
          mem: mem
        )
      end) ++
      floor_rows(cfg, fn floor ->
        reps = cfg.reps
        {sys, _} = throughput(reps, 100 * @mb, :system, "")
        {fl, mem} = throughput(reps, 100 * @mb, {:floor, floor}, "")

        row(
          "throughput",
          "floor: 100 MB into \"\" through floor.c --relay",
          "MB/s",
          fl,
          sys,
          true,
          mem: mem
        )
      end)
  end

  defp section("concurrency", cfg) do
    reps = if cfg.quick, do: 2, else: 5

    run = fn fun ->
      for _ <- 1..reps do
        {us, _} =
          :timer.tc(fn ->
            1..500
            |> Task.async_stream(fn _ -> {_, 0} = fun.() end, max_concurrency: 50, timeout: 60_000)
            |> Stream.run()
          end)

        500 / (us / 1_000_000)
      end
    end

    sys = run.(fn -> System.cmd("true", []) end)
    mt = run.(fn -> MuonTrap.cmd("true", []) end)

    [row("concurrency", "500 × true, 50 at once", "cmds/s", stats(mt), stats(sys), true)] ++
      floor_rows(cfg, fn floor ->
        fl = run.(fn -> System.cmd(floor, ["true"]) end)

        row(
          "concurrency",
          "floor: 500 × true through bench/floor.c",
          "cmds/s",
          stats(fl),
          stats(sys),
          true
        )
      end)
  end

  defp section("daemon", cfg), do: daemon_rows(cfg, [], "no cgroup")

  defp section("cgroup", cfg) do
    cond do
      cgroup_ready?() ->
        daemon_rows(cfg, [cgroup_base: @cg_base, cgroup: %{memory_max: 256 * @mb}], "cgroup v2") ++
          cgroup_calls(cfg, [], "v2 group")

      v1_memory?() ->
        # v1 or hybrid: a group beneath the BEAM's own (see :cgroup_beneath_beam).
        IO.puts("no cgroup v2 with controllers: v1 groups beneath the BEAM's own")
        rows = cgroup_calls(cfg, [cgroup_beneath_beam: true], "v1 memory group")

        # The only cgroup v2 group such a host has: cgroup2 without controllers,
        # where statistics/1 finds cgroup.stat, cpu.stat and the pressure files.
        v2_core =
          if v2_hierarchy?(),
            do:
              stat_calls(
                cfg,
                [cgroup_beneath_beam: true],
                "cpu.stat",
                "cgroup2 group, no controllers"
              ),
            else: []

        _ = remove_base_beneath_own()
        rows ++ v2_core

      true ->
        IO.puts("skipped (no cgroup v2, no v1 memory controller)")
        []
    end
  end

  defp section("many", cfg) do
    n = if cfg.quick, do: 200, else: 1000
    Process.flag(:trap_exit, true)
    mem0 = :erlang.memory(:total)

    children =
      for i <- 1..n do
        Supervisor.child_spec({Daemon, ["sleep", ["1000"], [delay_to_sigkill: 100]]}, id: i)
      end

    {start_us, {:ok, sup}} =
      :timer.tc(fn ->
        {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one, max_restarts: 0)
        # Running = the command has exec'd (statistics/1 waits for that).
        daemons = for {_, pid, _, _} <- Supervisor.which_children(sup), do: pid
        Enum.each(daemons, &Daemon.statistics/1)
        {:ok, sup}
      end)

    daemons = for {_, pid, _, _} <- Supervisor.which_children(sup), do: pid
    ports = Enum.map(daemons, &Daemon.os_pid/1)
    cmds = Enum.map(daemons, &Daemon.command_os_pid/1)
    beam_per = (:erlang.memory(:total) - mem0) / n
    rss_per = Enum.sum(Enum.map(ports, &rss_kb/1)) / n

    {stop_us, :ok} = :timer.tc(fn -> Supervisor.stop(sup) end)
    alive = Enum.filter(ports ++ cmds, &alive?/1)

    [
      row("many", "start #{n} daemons (all running)", "ms", stats([start_us / 1000]), nil, false),
      row("many", "stop #{n} daemons (all gone)", "ms", stats([stop_us / 1000]), nil, false,
        extra: "#{length(alive)} OS processes alive after stop"
      ),
      row("many", "BEAM memory per daemon", "KB", stats([beam_per / 1024]), nil, false),
      row("many", "port RSS per daemon", "KB", stats([rss_per]), nil, false)
    ]
  end

  defp section("binary", cfg) do
    path = MuonTrap.muontrap_path()
    tmp = Path.join(System.tmp_dir!(), "muontrap_bench_stripped")
    File.cp!(path, tmp)
    _ = System.cmd("strip", [tmp], stderr_to_stdout: true)
    size = File.stat!(tmp).size
    _ = File.rm(tmp)

    {:ok, d} = Daemon.start_link("sleep", ["1000"], log_output: :debug)
    _ = Daemon.statistics(d)
    Process.sleep(100)
    idle = rss_kb(Daemon.os_pid(d))
    GenServer.stop(d)

    # Streaming: the sampler in throughput/3 records the port's peak RSS.
    {_, mem} = throughput(1, 100 * @mb, :default)

    [
      row("binary", "stripped size", "KB", stats([size / 1000]), nil, false),
      row("binary", "RSS idle (Daemon, sleep)", "KB", stats([idle]), nil, false)
    ] ++
      floor_rows(cfg, fn floor ->
        port = Port.open({:spawn_executable, floor}, [:binary, args: ["--idle"]])
        {:os_pid, pid} = Port.info(port, :os_pid)
        Process.sleep(100)
        kb = rss_kb(pid)
        Port.close(port)

        row(
          "binary",
          "floor: RSS of an idle C program (bench/floor.c)",
          "KB",
          stats([kb]),
          nil,
          false,
          extra: "any dynamically linked glibc program costs this much"
        )
      end) ++
      [row("binary", "RSS peak streaming 100 MB", "KB", stats([mem.port_rss_kb]), nil, false)]
  end

  defp throughput_rows(cfg) do
    sizes = [{"1 MB", @mb, cfg.reps * 3}, {"100 MB", 100 * @mb, cfg.reps}]
    sizes = if cfg.gb, do: sizes ++ [{"1 GB", 1000 * @mb, 1}], else: sizes

    Enum.flat_map(sizes, fn {label, size, reps} ->
      {sys, sys_mem} = throughput(reps, size, :system)

      windows =
        cond do
          size >= 1000 * @mb -> [:default]
          size >= 100 * @mb and cfg.quick -> [:default, 10_240]
          true -> [:default | @windows]
        end

      base =
        row("throughput", "#{label} System.cmd/3", "MB/s", sys, nil, true,
          mem: sys_mem,
          size: size
        )

      counted =
        Enum.map(windows, fn w ->
          {mt, mem} = throughput(reps, size, w)

          row("throughput", "#{label} window #{w}", "MB/s", mt, sys, true,
            mem: mem,
            size: size,
            window: w
          )
        end)

      # At 100 MB also the default into "".
      extra = if size == 100 * @mb, do: into_binary(label, size, reps), else: []

      [base | counted] ++ extra
    end)
  end

  # The floor rows: bench/floor.c, built with the system C compiler, is the
  # cheapest possible process between the BEAM and the command. Skipped
  # (with a note) where there is no C compiler.
  defp floor_rows(%{floor: nil}, _fun), do: []
  defp floor_rows(%{floor: floor}, fun), do: [fun.(floor)]

  defp build_floor do
    src = Path.expand("../../../bench/floor.c", __DIR__)
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

  # The default `into: ""`: both sides also build the 100 MB binary, which
  # dominates; the Counter rows above isolate the transport.
  defp into_binary(label, size, reps) do
    {sys, sys_mem} = throughput(reps, size, :system, "")
    {mt, mem} = throughput(reps, size, :default, "")

    [
      row("throughput", "#{label} into \"\" System.cmd/3", "MB/s", sys, nil, true,
        mem: sys_mem,
        size: {:binary, size}
      ),
      row("throughput", "#{label} into \"\" window default", "MB/s", mt, sys, true, mem: mem)
    ]
  end

  # -- sections 4 and 5 --------------------------------------------------

  defp daemon_rows(cfg, opts, label) do
    n = if cfg.quick, do: 10, else: 30
    Process.flag(:trap_exit, true)

    results =
      for _ <- 1..n do
        t0 = System.monotonic_time(:microsecond)
        {:ok, d} = Daemon.start_link("sh", ["-c", "sleep 1000 & exec sleep 1000"], opts)
        _ = Daemon.statistics(d)
        t1 = System.monotonic_time(:microsecond)
        pids = [Daemon.os_pid(d), Daemon.command_os_pid(d) | children(Daemon.command_os_pid(d))]
        # Give the shell time to fork its background sleep.
        Process.sleep(20)
        pids = Enum.uniq(pids ++ descendants(Daemon.os_pid(d)))
        t2 = System.monotonic_time(:microsecond)
        :ok = GenServer.stop(d)
        await_gone(pids, t2 + 5_000_000)
        t3 = System.monotonic_time(:microsecond)
        {t1 - t0, t3 - t2}
      end

    {start, stop} = Enum.unzip(results)

    [
      row(
        "daemon",
        "start to running (#{label})",
        "ms",
        stats(Enum.map(start, &(&1 / 1000))),
        nil,
        false
      ),
      row(
        "daemon",
        "stop to all gone (#{label})",
        "ms",
        stats(Enum.map(stop, &(&1 / 1000))),
        nil,
        false
      )
    ]
  end

  defp stat_calls(cfg, extra, key, label) do
    n = if cfg.quick, do: 200, else: 2000
    {:ok, d} = Daemon.start_link("sleep", ["1000"], [cgroup_base: @cg_base] ++ extra)
    %{cgroup: %{^key => _}} = Daemon.statistics(d)
    stat = times(n, fn -> %{cgroup: %{^key => _}} = Daemon.statistics(d) end)
    keys = d |> Daemon.statistics() |> Map.fetch!(:cgroup) |> map_size()
    GenServer.stop(d)
    [row("cgroup", "statistics/1 (#{label})", "µs", stat, nil, false, extra: "#{keys} files")]
  end

  defp v2_hierarchy?, do: MuonTrap.Cgroup.layout().v2 != nil

  defp cgroup_calls(cfg, extra, label) do
    n = if cfg.quick, do: 200, else: 2000

    {:ok, d} =
      Daemon.start_link(
        "sleep",
        ["1000"],
        [cgroup_base: @cg_base, cgroup: %{memory_max: 256 * @mb}] ++ extra
      )

    _ = Daemon.statistics(d)
    stat = times(n, fn -> %{cgroup: %{"memory.current" => _}} = Daemon.statistics(d) end)
    conf = times(n, fn -> %{memory_max: _} = Daemon.cgroup_config(d) end)
    GenServer.stop(d)

    [
      row("cgroup", "statistics/1 (#{label})", "µs", stat, nil, false),
      row("cgroup", "cgroup_config/1 (#{label})", "µs", conf, nil, false)
    ]
  end

  # The daemons removed their groups; the base directory they shared is ours.
  defp remove_base_beneath_own do
    layout = MuonTrap.Cgroup.layout()

    for h <- List.wrap(layout.v2) ++ layout.v1, h.own != nil do
      File.rmdir(Path.join([h.mount, h.own, @cg_base]))
    end
  end

  defp v1_memory? do
    case MuonTrap.Cgroup.layout() do
      %{v1: v1} -> Enum.any?(v1, &("memory" in &1.controllers and &1.own != nil))
      _ -> false
    end
  end

  defp cgroup_ready? do
    case File.read("/sys/fs/cgroup/cgroup.controllers") do
      {:ok, c} ->
        ok = Enum.all?(~w(memory pids), &(&1 in String.split(c)))

        ok and
          (File.mkdir_p("/sys/fs/cgroup/#{@cg_base}") == :ok and
             File.write("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids") == :ok and
             File.write("/sys/fs/cgroup/#{@cg_base}/cgroup.subtree_control", "+memory +pids") ==
               :ok)

      _ ->
        false
    end
  end

  # -- measurement helpers -----------------------------------------------

  defp times(n, fun) do
    _ = fun.()

    for(_ <- 1..n, do: elem(:timer.tc(fun), 0))
    |> stats()
  end

  defp stats(samples) do
    sorted = Enum.sort(samples)
    {hd(sorted), Enum.at(sorted, div(length(sorted), 2)), List.last(sorted)}
  end

  # Streams `size` bytes of `head -c` through System.cmd/3 or MuonTrap.cmd/3
  # into a byte counter (or `into`); a sampler records the caller's peak
  # mailbox and heap and the port binary's peak RSS.
  defp throughput(reps, size, how, into \\ :counter) do
    args = ["-c", "#{size}", "/dev/zero"]
    collectable = fn -> if into == :counter, do: %__MODULE__.Counter{}, else: into end

    runs =
      for _ <- 1..reps do
        :erlang.garbage_collect()
        parent = self()
        sampler = spawn_link(fn -> sample(parent, %{mailbox: 0, heap: 0, port_rss_kb: 0}) end)

        {us, {out, 0}} =
          :timer.tc(fn ->
            case how do
              :system -> System.cmd("head", args, into: collectable.())
              {:floor, fl} -> System.cmd(fl, ["--relay", "head" | args], into: collectable.())
              w -> muontrap_head(args, collectable.(), w)
            end
          end)

        send(sampler, {:stop, self()})
        mem = receive do: ({:sampled, m} -> m)

        bytes =
          case out do
            %__MODULE__.Counter{bytes: bytes} -> bytes
            binary -> byte_size(binary)
          end

        if bytes != size,
          do: Mix.raise("#{inspect(how)}: #{bytes} bytes arrived, #{size} expected")

        {size / us, mem}
      end

    {rates, mems} = Enum.unzip(runs)
    peak = Enum.reduce(mems, fn a, b -> Map.merge(a, b, fn _, x, y -> max(x, y) end) end)
    {stats(rates), peak}
  end

  defp muontrap_head(args, into, :default), do: MuonTrap.cmd("head", args, into: into)

  defp muontrap_head(args, into, w),
    do: MuonTrap.cmd("head", args, into: into, stdio_window: w)

  defp sample(parent, acc) do
    receive do
      {:stop, from} -> send(from, {:sampled, acc})
    after
      2 ->
        acc =
          case Process.info(parent, [:message_queue_len, :total_heap_size]) do
            [message_queue_len: q, total_heap_size: h] ->
              port_rss =
                Port.list()
                |> Enum.filter(&(Port.info(&1, :connected) == {:connected, parent}))
                |> Enum.map(&Port.info(&1, :os_pid))
                |> Enum.map(fn
                  {:os_pid, pid} -> rss_kb(pid)
                  _ -> 0
                end)
                |> Enum.sum()

              %{
                mailbox: max(acc.mailbox, q),
                heap: max(acc.heap, h * :erlang.system_info(:wordsize)),
                port_rss_kb: max(acc.port_rss_kb, port_rss)
              }

            _ ->
              acc
          end

        sample(parent, acc)
    end
  end

  defp rss_kb(pid) do
    case File.read("/proc/#{pid}/status") do
      {:ok, s} ->
        case Regex.run(~r/VmRSS:\s+(\d+)/, s) do
          [_, kb] -> String.to_integer(kb)
          _ -> 0
        end

      _ ->
        0
    end
  end

  defp alive?(pid) when is_integer(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, s} -> not String.contains?(s, ") Z ")
      _ -> false
    end
  end

  defp alive?(_), do: false

  defp children(pid) when is_integer(pid) do
    case File.read("/proc/#{pid}/task/#{pid}/children") do
      {:ok, s} -> s |> String.split() |> Enum.map(&String.to_integer/1)
      _ -> []
    end
  end

  defp children(_), do: []

  defp descendants(pid) do
    kids = children(pid)
    kids ++ Enum.flat_map(kids, &descendants/1)
  end

  defp await_gone(pids, deadline) do
    cond do
      not Enum.any?(pids, &alive?/1) ->
        :ok

      System.monotonic_time(:microsecond) > deadline ->
        Mix.raise("still alive after stop: #{inspect(Enum.filter(pids, &alive?/1))}")

      true ->
        Process.sleep(1)
        await_gone(pids, deadline)
    end
  end

  # Every live descendant of this BEAM except erl_child_setup.
  defp leftovers do
    Process.sleep(200)
    me = System.pid() |> String.to_integer()

    me
    |> descendants()
    |> Enum.filter(&alive?/1)
    |> Enum.map(fn pid -> {pid, String.trim(File.read!("/proc/#{pid}/comm"))} end)
    |> Enum.reject(fn {_, comm} -> comm in ["erl_child_setup", "inet_gethost", "epmd"] end)
  rescue
    File.Error -> []
  end

  # -- output ------------------------------------------------------------

  defp row(section, name, unit, stats, base, higher_better, extra \\ []) do
    Map.merge(
      %{
        section: section,
        name: name,
        unit: unit,
        stats: stats,
        base: base,
        higher_better: higher_better
      },
      Map.new(extra)
    )
  end

  defp ratio(%{base: nil}), do: nil

  # Ratios are MuonTrap against System.cmd/3 on medians: for rates mt/sys
  # (≥ 1 is as fast), for times mt/sys (≤ 1 is as fast).
  defp ratio(%{stats: {_, m, _}, base: {_, b, _}}), do: m / b

  defp fmt(x) when is_float(x) and x >= 100, do: :erlang.float_to_binary(x, decimals: 0)
  defp fmt(x) when is_float(x) and x >= 10, do: :erlang.float_to_binary(x, decimals: 1)
  defp fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 2)
  defp fmt(x) when is_integer(x), do: fmt(x * 1.0)
  defp fmt(nil), do: ""

  defp fmt_stats({a, b, c}), do: "#{fmt(a)} / #{fmt(b)} / #{fmt(c)}"

  defp mem_note(%{mem: %{mailbox: q, heap: h} = m}) do
    port = if m.port_rss_kb > 0, do: ", port RSS ≤ #{m.port_rss_kb} KB", else: ""
    "caller mailbox ≤ #{q} msgs, heap ≤ #{fmt(h / 1024)} KB#{port}"
  end

  defp mem_note(%{extra: e}), do: e
  defp mem_note(_), do: ""

  defp print_row(r) do
    ratio = if x = ratio(r), do: "  ×#{fmt(x)}", else: ""

    IO.puts(
      String.pad_trailing(r.name, 52) <>
        String.pad_leading("#{fmt_stats(r.stats)} #{r.unit}", 32) <> ratio <> "  " <> mem_note(r)
    )
  end

  defp markdown(rows, cfg, leftovers) do
    header = """
    # MuonTrap benchmark results

    `mix muontrap.bench#{if cfg.quick, do: " --quick", else: ""}#{if cfg.gb, do: " --gb", else: ""}` on
    #{System.schedulers_online()} schedulers, OTP #{System.otp_release()}, Elixir #{System.version()}.
    Figures are min / median / max; the ratio is MuonTrap's median over System.cmd/3's
    (rates: higher is better; times: lower is better). Left behind after the run:
    #{if leftovers == [], do: "nothing", else: inspect(leftovers)}.

    | section | case | min / median / max | unit | ratio vs System.cmd/3 | memory / notes |
    | --- | --- | --- | --- | --- | --- |
    """

    header <>
      Enum.map_join(rows, "", fn r ->
        ratio = if x = ratio(r), do: "×#{fmt(x)}", else: ""

        "| #{r.section} | #{r.name} | #{fmt_stats(r.stats)} | #{r.unit} | #{ratio} | #{mem_note(r)} |\n"
      end)
  end

  # Throughput against window size, one line per output size, with System.cmd/3 dashed.
  defp svg(rows) do
    series =
      rows
      |> Enum.filter(&(&1.section == "throughput" and is_integer(Map.get(&1, :window))))
      |> Enum.group_by(& &1.size)

    bases =
      for r <- rows, r.section == "throughput", r.base == nil, into: %{}, do: {r.size, r.stats}

    {w, h, l, b} = {640, 400, 60, 50}
    xs = Enum.map(@windows, &:math.log2/1)
    {x0, x1} = {Enum.min(xs), Enum.max(xs)}

    all =
      Enum.flat_map(Map.values(series), fn rs -> Enum.map(rs, &elem(&1.stats, 1)) end) ++
        Enum.map(Map.values(bases), &elem(&1, 1))

    ymax = Enum.max([1.0 | all]) * 1.1
    px = fn win -> l + (:math.log2(win) - x0) / (x1 - x0) * (w - l - 20) end
    py = fn v -> h - b - v / ymax * (h - b - 20) end
    colors = ["#1f77b4", "#d62728", "#2ca02c"]

    lines =
      series
      |> Enum.sort()
      |> Enum.zip(colors)
      |> Enum.map_join("\n", fn {{size, rs}, color} ->
        pts =
          rs
          |> Enum.sort_by(& &1.window)
          |> Enum.map_join(" ", fn r -> "#{px.(r.window)},#{py.(elem(r.stats, 1))}" end)

        base =
          case bases[size] do
            {_, m, _} ->
              ~s[<line x1="#{l}" x2="#{w - 20}" y1="#{py.(m)}" y2="#{py.(m)}" stroke="#{color}" stroke-dasharray="6 4"/>]

            nil ->
              ""
          end

        label = "#{div(size, @mb)} MB"

        ~s[<polyline fill="none" stroke="#{color}" stroke-width="2" points="#{pts}"/>\n#{base}\n] <>
          ~s[<text x="#{w - 20}" y="#{py.(elem(List.last(Enum.sort_by(rs, & &1.window)).stats, 1)) - 6}" text-anchor="end" fill="#{color}" font-size="12">MuonTrap.cmd #{label} (dashed: System.cmd)</text>]
      end)

    ticks =
      Enum.map_join(@windows, "\n", fn win ->
        ~s[<text x="#{px.(win)}" y="#{h - b + 18}" text-anchor="middle" font-size="11">#{if win >= 1024, do: "#{div(win, 1024)} KiB", else: win}</text>]
      end)

    yticks =
      Enum.map_join(0..4, "\n", fn i ->
        v = ymax / 1.1 * i / 4

        ~s[<text x="#{l - 6}" y="#{py.(v) + 4}" text-anchor="end" font-size="11">#{round(v)}</text>] <>
          ~s[<line x1="#{l}" x2="#{w - 20}" y1="#{py.(v)}" y2="#{py.(v)}" stroke="#ddd"/>]
      end)

    """
    <svg xmlns="http://www.w3.org/2000/svg" width="#{w}" height="#{h}" font-family="sans-serif">
    <rect width="100%" height="100%" fill="white"/>
    <text x="#{w / 2}" y="16" text-anchor="middle" font-size="14">Output throughput (MB/s, median) against --stdio-window</text>
    #{yticks}
    #{ticks}
    <line x1="#{l}" y1="#{h - b}" x2="#{w - 20}" y2="#{h - b}" stroke="black"/>
    <line x1="#{l}" y1="20" x2="#{l}" y2="#{h - b}" stroke="black"/>
    <text x="#{w / 2}" y="#{h - 12}" text-anchor="middle" font-size="12">window (log scale); the library default is 256 KiB</text>
    #{lines}
    </svg>
    """
  end
end
