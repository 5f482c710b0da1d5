defmodule Mix.Tasks.Muontrap.Bench.CgroupSections do
  @moduledoc false
  # Sections 4 and 5: daemon start/stop (without and with a cgroup) and the
  # cgroup calls statistics/1 and cgroup_config/1.

  import Mix.Tasks.Muontrap.Bench.Measure, only: [times: 2, stats: 1]
  import Mix.Tasks.Muontrap.Bench.Report, only: [row: 6, row: 7]

  alias Mix.Tasks.Muontrap.Bench.Procs
  alias MuonTrap.Daemon

  @mb 1_000_000
  @cg_base "muontrap_bench"

  def section("daemon", cfg), do: daemon_rows(cfg, [], "no cgroup") ++ exe_rows(cfg)

  def section("cgroup", cfg) do
    cond do
      cgroup_ready?() ->
        daemon_rows(cfg, [cgroup_base: @cg_base, cgroup: %{memory_max: 256 * @mb}], "cgroup v2") ++
          cgroup_calls(cfg, [], "v2 group")

      v1_memory?() ->
        # v1 or hybrid: a group beneath the BEAM's own (see :beneath_own_cgroup).
        IO.puts("no cgroup v2 with controllers: v1 groups beneath the BEAM's own")
        rows = cgroup_calls(cfg, [beneath_own_cgroup: true], "v1 memory group")

        # The only cgroup v2 group such a host has: cgroup2 without controllers,
        # where statistics/1 finds cgroup.stat, cpu.stat and the pressure files.
        v2_core =
          if v2_hierarchy?(),
            do:
              stat_calls(
                cfg,
                [beneath_own_cgroup: true],
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

  defp daemon_rows(cfg, opts, label) do
    n = if cfg.quick, do: 10, else: 30
    Process.flag(:trap_exit, true)

    {start, stop} = Enum.unzip(for _ <- 1..n, do: daemon_once(opts))

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

  # The targets of the resident spawner: a bare `sleep`, timed in tight
  # loops (no sleeps) from start_link until /proc/<command_os_pid>/exe is
  # the program, and from GenServer.stop until the supervisor and the
  # command are gone from /proc (reaped, not only dead).
  defp exe_rows(cfg) do
    n = if cfg.quick, do: 15, else: 50
    Process.flag(:trap_exit, true)
    exe = realpath(System.find_executable("sleep"))
    {start, stop} = Enum.unzip(for _ <- 1..n, do: exe_once(exe))

    [
      row(
        "daemon",
        "Daemon sleep (no cgroup): start until /proc/<command_os_pid>/exe is the program",
        "ms",
        stats(Enum.map(start, &(&1 / 1000))),
        nil,
        false
      ),
      row(
        "daemon",
        "Daemon stop until all is gone (supervisor and command, from /proc)",
        "ms",
        stats(Enum.map(stop, &(&1 / 1000))),
        nil,
        false
      )
    ]
  end

  defp exe_once(exe) do
    t0 = System.monotonic_time(:microsecond)
    {:ok, d} = Daemon.start_link("sleep", ["1000"], [])
    cmd = await_exe(d, exe, t0 + 5_000_000)
    t1 = System.monotonic_time(:microsecond)
    sup = Daemon.os_pid(d)
    t2 = System.monotonic_time(:microsecond)
    :ok = GenServer.stop(d)
    await_gone([sup, cmd], t2 + 5_000_000)
    {t1 - t0, System.monotonic_time(:microsecond) - t2}
  end

  @doc false
  def await_exe(d, exe, deadline) do
    with pid when is_integer(pid) <- Daemon.command_os_pid(d),
         {:ok, ^exe} <- File.read_link("/proc/#{pid}/exe") do
      pid
    else
      _ ->
        if System.monotonic_time(:microsecond) > deadline,
          do: Mix.raise("the daemon's command never became #{exe}")

        await_exe(d, exe, deadline)
    end
  end

  defp await_gone(pids, deadline) do
    cond do
      Enum.all?(pids, &Procs.gone?/1) ->
        :ok

      System.monotonic_time(:microsecond) > deadline ->
        Mix.raise("still in /proc: #{inspect(pids)}")

      true ->
        await_gone(pids, deadline)
    end
  end

  @doc false
  def realpath(path) do
    case File.read_link(path) do
      {:ok, target} -> realpath(Path.expand(target, Path.dirname(path)))
      {:error, _} -> path
    end
  end

  # µs from start_link to running, and from stop to every process gone.
  defp daemon_once(opts) do
    t0 = System.monotonic_time(:microsecond)
    {:ok, d} = Daemon.start_link("sh", ["-c", "sleep 1000 & exec sleep 1000"], opts)
    _ = Daemon.statistics(d)
    t1 = System.monotonic_time(:microsecond)

    pids = [
      Daemon.os_pid(d),
      Daemon.command_os_pid(d) | Procs.children(Daemon.command_os_pid(d))
    ]

    # Give the shell time to fork its background sleep.
    Process.sleep(20)
    pids = Enum.uniq(pids ++ Procs.descendants(Daemon.os_pid(d)))
    t2 = System.monotonic_time(:microsecond)
    :ok = GenServer.stop(d)
    Procs.await_gone(pids, t2 + 5_000_000)
    t3 = System.monotonic_time(:microsecond)
    {t1 - t0, t3 - t2}
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
end
