defmodule Mix.Tasks.Muontrap.Bench.Sections do
  @moduledoc false
  # The sections latency, timeout, throughput, concurrency, many and binary.

  import Mix.Tasks.Muontrap.Bench.Measure
  import Mix.Tasks.Muontrap.Bench.Report, only: [row: 6, row: 7]

  alias Mix.Tasks.Muontrap.Bench.{Counter, Procs, ResidentFloor}
  alias MuonTrap.Daemon

  @mb 1_000_000

  def section("latency", cfg) do
    n = if cfg.quick, do: 50, else: 300

    Enum.flat_map([{"true", []}, {"echo", ["hi"]}], fn {cmd, args} ->
      sys = times(n, fn -> {_, 0} = System.cmd(cmd, args) end)
      mt = times(n, fn -> {_, 0} = MuonTrap.cmd(cmd, args) end)
      name = "cmd(#{inspect(cmd)}, #{inspect(args)})"

      [row("latency", name, "µs", mt, sys, false)] ++
        floor_rows(cfg, fn floor ->
          fl = times(n, fn -> {_, 0} = System.cmd(floor, [cmd | args]) end)
          row("latency", "floor (per command): #{name}", "µs", fl, sys, false)
        end) ++
        resident_rows(cfg, fn server ->
          fl = times(n, fn -> {_, 0} = ResidentFloor.cmd(server, cmd, args) end)
          row("latency", "floor (resident): #{name}", "µs", fl, sys, false)
        end)
    end)
  end

  # How late cmd/3 returns after `timeout: 250` (target: 50 ms), for a
  # command that floods its output and for one that ignores SIGTERM.
  # System.cmd/3 has no timeout to compare with.
  def section("timeout", cfg) do
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

  def section("throughput", cfg) do
    throughput_rows(cfg) ++ relay_floor_rows(cfg) ++ stream_rows(cfg)
  end

  # Each round runs one burst of every case, in an order that rotates
  # from round to round, so the ratios compare bursts run seconds apart,
  # not a case's rounds against another's run after them. Nine rounds: a
  # burst takes a third of a second, and with five the medians of one
  # run moved by a tenth from run to run (docs/performance.md, round 15).
  def section("concurrency", cfg) do
    reps = if cfg.quick, do: 2, else: 9
    name = "500 × true, 50 at once"

    cases =
      [sys: fn -> System.cmd("true", []) end, mt: fn -> MuonTrap.cmd("true", []) end] ++
        floor_rows(cfg, &{:floor, fn -> System.cmd(&1, ["true"]) end}) ++
        resident_rows(cfg, &{:resident, fn -> ResidentFloor.cmd(&1, "true", []) end})

    rates = interleaved_bursts(cases, reps)
    sys = stats(rates[:sys])

    [row("concurrency", name, "cmds/s", stats(rates[:mt]), sys, true)] ++
      floor_rows(cfg, fn _ ->
        row(
          "concurrency",
          "floor (per command): #{name}",
          "cmds/s",
          stats(rates[:floor]),
          sys,
          true
        )
      end) ++
      resident_rows(cfg, fn _ ->
        row(
          "concurrency",
          "floor (resident): #{name}",
          "cmds/s",
          stats(rates[:resident]),
          sys,
          true
        )
      end)
  end

  def section("many", cfg) do
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
    rss_per = Enum.sum(Enum.map(ports, &Procs.rss_kb/1)) / n

    {stop_us, :ok} = :timer.tc(fn -> Supervisor.stop(sup) end)
    alive = Enum.filter(ports ++ cmds, &Procs.alive?/1)

    [
      row("many", "start #{n} daemons (all running)", "ms", stats([start_us / 1000]), nil, false),
      row("many", "stop #{n} daemons (all gone)", "ms", stats([stop_us / 1000]), nil, false,
        extra: "#{length(alive)} OS processes alive after stop"
      ),
      row("many", "BEAM memory per daemon", "KB", stats([beam_per / 1024]), nil, false),
      row(
        "many",
        "RSS per supervisor (mean; shared pages counted in each)",
        "KB",
        stats([rss_per]),
        nil,
        false,
        extra: "see the PSS rows of section memory for what they cost together"
      )
    ]
  end

  def section("binary", cfg) do
    path = MuonTrap.muontrap_path()
    tmp = Path.join(System.tmp_dir!(), "muontrap_bench_stripped")
    File.cp!(path, tmp)
    _ = System.cmd("strip", [tmp], stderr_to_stdout: true)
    size = File.stat!(tmp).size
    _ = File.rm(tmp)

    {:ok, d} = Daemon.start_link("sleep", ["1000"], log_output: :debug)
    _ = Daemon.statistics(d)
    Process.sleep(100)
    idle = Procs.rss_kb(Daemon.os_pid(d))
    GenServer.stop(d)

    # Streaming: the sampler in Measure.throughput/4 records the peak RSS of
    # the port binary or supervisor.
    {_, mem} = throughput(1, 100 * @mb, :default)

    [
      row("binary", "stripped size", "KB", stats([size / 1000]), nil, false),
      row("binary", "RSS idle (Daemon, sleep)", "KB", stats([idle]), nil, false)
    ] ++
      floor_rows(cfg, &idle_floor_row/1) ++
      [row("binary", "RSS peak streaming 100 MB", "KB", stats([mem.port_rss_kb]), nil, false)]
  end

  # `reps` rounds (after one to warm up) of a 500-command burst, 50 at
  # once, of each case: its rates in commands per second, by case.
  defp interleaved_bursts(cases, reps) do
    burst = fn fun ->
      {us, _} =
        :timer.tc(fn ->
          1..500
          |> Task.async_stream(fn _ -> {_, 0} = fun.() end, max_concurrency: 50, timeout: 60_000)
          |> Stream.run()
        end)

      500 / (us / 1_000_000)
    end

    Enum.each(cases, fn {_, fun} -> burst.(fun) end)

    0..(reps - 1)
    |> Enum.flat_map(fn round ->
      {first, last} = Enum.split(cases, rem(round, length(cases)))
      for {key, fun} <- last ++ first, do: {key, burst.(fun)}
    end)
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
  end

  defp idle_floor_row(floor) do
    port = Port.open({:spawn_executable, floor}, [:binary, args: ["--idle"]])
    {:os_pid, pid} = Port.info(port, :os_pid)
    Process.sleep(100)
    kb = Procs.rss_kb(pid)
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
  end

  # -- throughput ----------------------------------------------------------

  defp throughput_rows(cfg) do
    sizes = [{"1 MB", @mb, cfg.reps * 3}, {"100 MB", 100 * @mb, cfg.reps}]
    sizes = if cfg.gb, do: sizes ++ [{"1 GB", 1000 * @mb, 1}], else: sizes

    Enum.flat_map(sizes, fn {label, size, reps} ->
      {sys, sys_mem} = throughput(reps, size, :system)

      windows =
        cond do
          size >= 1000 * @mb -> [:default]
          size >= 100 * @mb and cfg.quick -> [:default, 10_240]
          true -> [:default | windows()]
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

  defp relay_floor_rows(cfg) do
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

  # MuonTrap.stream!/3 reduced to a byte count against MuonTrap.cmd/3 into a
  # counter, the same `head` (the ratio of the stream!/3 row is over cmd/3's
  # median), with System.cmd/3 beside them for reference; runs interleaved.
  defp stream_rows(cfg) do
    size = 100 * @mb
    args = ["-c", "#{size}", "/dev/zero"]

    [{sys, sys_mem}, {cmd, cmd_mem}, {st, st_mem}] =
      interleaved(cfg.reps, size, [
        {:system, fn -> System.cmd("head", args, into: %Counter{}) end},
        {:default, fn -> MuonTrap.cmd("head", args, into: %Counter{}) end},
        {:stream!,
         fn -> {MuonTrap.stream!("head", args) |> Enum.reduce(0, &(byte_size(&1) + &2)), 0} end}
      ])

    [
      row("throughput", "100 MB System.cmd/3 (beside stream!/3)", "MB/s", sys, nil, true,
        mem: sys_mem,
        size: {:stream, size}
      ),
      row("throughput", "100 MB cmd/3 into a counter", "MB/s", cmd, sys, true, mem: cmd_mem),
      row("throughput", "100 MB stream!/3 |> Enum.reduce, ratio vs cmd/3", "MB/s", st, cmd, true,
        mem: st_mem
      )
    ]
  end
end
