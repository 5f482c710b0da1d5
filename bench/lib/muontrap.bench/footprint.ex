defmodule Mix.Tasks.Muontrap.Bench.Footprint do
  @moduledoc false
  # The section "memory": what MuonTrap's own OS processes cost (PSS of
  # the resident spawner and its per-command supervisors, and the kernel's
  # page tables and stacks) with idle daemons, and the Erlang ports held
  # per running command.

  import Mix.Tasks.Muontrap.Bench.Measure, only: [stats: 1]
  import Mix.Tasks.Muontrap.Bench.Report, only: [row: 7]

  alias Mix.Tasks.Muontrap.Bench.Procs
  alias MuonTrap.Daemon

  def section("memory", cfg), do: pss_rows(cfg) ++ [ports_row()]

  defp pss_rows(cfg) do
    case Procs.spawner() do
      nil ->
        IO.puts("no resident spawner in this build: the PSS rows are skipped")
        []

      spawner ->
        Process.flag(:trap_exit, true)
        # The spawner alone: no supervisor of an earlier section is left,
        # and its standby supervisor (forked once it is idle, a moment
        # after its last start; none in builds before it) is counted with
        # it, as it is there beside any number of daemons.
        [] = await_children(spawner, 0)
        Process.sleep(100)
        alone = total_pss(spawner)
        big = if cfg.quick, do: 200, else: 1000

        [
          row("memory", "PSS of the spawner alone", "KB", stats([alone]), nil, false,
            extra: "with its standby supervisor, if any"
          )
        ] ++
          idle_rows(spawner, alone, 1) ++
          idle_rows(spawner, alone, 20) ++ idle_rows(spawner, alone, big, after_cmds: 1000)
    end
  end

  # Total PSS of the spawner and its children (the supervisors) with `n`
  # idle daemons; with `after_cmds:`, again after that many cmd/3 runs
  # beside them (a spawner that dirtied its heap between forks would have
  # given each supervisor private copies), and the kernel's growth.
  defp idle_rows(spawner, alone, n, opts \\ []) do
    kernel0 = Procs.kernel_kb()
    {:ok, sup} = start_daemons(n)
    sups = await_children(spawner, n)
    kernel = (Procs.kernel_kb() - kernel0) / n
    total = total_pss(spawner)
    label = "#{n} idle sleep daemon#{if n > 1, do: "s"}"

    rows = [
      row("memory", "PSS of spawner + supervisors, #{label}", "KB", stats([total]), nil, false,
        extra: "#{length(sups)} supervisors"
      ),
      row(
        "memory",
        "PSS per daemon, #{label}",
        "KB",
        stats([(total - alone) / n]),
        nil,
        false,
        extra: "total / N: #{fmt(total / n)} KB"
      )
    ]

    rows =
      if n >= 20,
        do:
          rows ++
            [
              row(
                "memory",
                "PageTables + KernelStack per daemon, #{label}",
                "KB",
                stats([kernel]),
                nil,
                false,
                extra: "growth of /proc/meminfo's (whole machine): supervisor's and sleep's"
              )
            ],
        else: rows

    rows = rows ++ after_cmds(spawner, alone, n, label, opts[:after_cmds])
    :ok = Supervisor.stop(sup)
    _ = await_children(spawner, 0)
    rows
  end

  defp after_cmds(_spawner, _alone, _n, _label, nil), do: []

  defp after_cmds(spawner, alone, n, _label, cmds) do
    for _ <- 1..cmds, do: {_, 0} = MuonTrap.cmd("true", [])
    _ = await_children(spawner, n)
    total = total_pss(spawner)

    [
      row(
        "memory",
        "PSS per daemon after #{cmds} cmd(\"true\"), #{n} idle",
        "KB",
        stats([(total - alone) / n]),
        nil,
        false,
        extra: "spawner now #{Procs.pss_kb(spawner)} KB; must not grow"
      )
    ]
  end

  defp start_daemons(n) do
    children =
      for i <- 1..n,
          do: Supervisor.child_spec({Daemon, ["sleep", ["1000"], [delay_to_sigkill: 100]]}, id: i)

    {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one, max_restarts: 0)
    # Running = the command has exec'd (statistics/1 waits for that).
    Enum.each(Supervisor.which_children(sup), fn {_, pid, _, _} -> _ = Daemon.statistics(pid) end)
    {:ok, sup}
  end

  defp total_pss(spawner),
    do: Enum.sum(Enum.map([spawner | Procs.children(spawner)], &Procs.pss_kb/1))

  # The spawner's children that run a command, once there are `n`
  # (stopped supervisors are reaped by the spawner a moment after their
  # daemon stops; a standby supervisor has no command).
  defp await_children(spawner, n, deadline \\ nil) do
    deadline = deadline || System.monotonic_time(:millisecond) + 10_000

    kids = Enum.filter(Procs.supervisors(spawner), &Procs.alive?/1)

    cond do
      length(kids) == n ->
        kids

      System.monotonic_time(:millisecond) > deadline ->
        Mix.raise("the spawner has #{length(kids)} children, #{n} expected")

      true ->
        Process.sleep(5)
        await_children(spawner, n, deadline)
    end
  end

  # Erlang ports held while 20 cmd/3 calls run `sleep`; the callers are
  # then killed, which kills their commands.
  defp ports_row do
    before = length(Port.list())
    tasks = for _ <- 1..20, do: Task.async(fn -> MuonTrap.cmd("sleep", ["1000"]) end)
    sleeps = await_sleeps(20, System.monotonic_time(:millisecond) + 10_000)
    held = (length(Port.list()) - before) / 20
    Enum.each(tasks, &Task.shutdown(&1, :brutal_kill))
    Procs.await_gone(sleeps, System.monotonic_time(:microsecond) + 5_000_000)

    row("memory", "Erlang ports held per running command", "ports", stats([held]), nil, false,
      extra: "Port.list() with 20 running sleep cmd/3 calls, minus before, / 20"
    )
  end

  defp await_sleeps(n, deadline) do
    me = String.to_integer(System.pid())
    roots = [me | if(Procs.spawner_transport?(), do: [MuonTrap.Nif.spawner_pid()], else: [])]

    sleeps =
      roots
      |> Enum.flat_map(&Procs.descendants/1)
      |> Enum.filter(&(Procs.alive?(&1) and comm(&1) == "sleep"))

    cond do
      length(sleeps) >= n -> sleeps
      System.monotonic_time(:millisecond) > deadline -> Mix.raise("#{n} sleeps never ran")
      true -> await_sleeps(n, deadline)
    end
  end

  defp comm(pid) do
    case File.read("/proc/#{pid}/comm") do
      {:ok, c} -> String.trim(c)
      _ -> nil
    end
  end

  defp fmt(x), do: :erlang.float_to_binary(x * 1.0, decimals: 1)
end
