defmodule MuonTrap.SoakTest do
  # Long runs (`mix test --only soak`; the README's "Reliability" has the
  # figures): 10,000 mixed cmd/3 runs, 1,000 daemon lifecycles with
  # readiness, watchdog and relaunch, and 200 chatty daemons for
  # MUONTRAP_SOAK_MINUTES (default 10) minutes. Before and after each: the
  # BEAM's descriptors, zombies, processes and cgroups left, the BEAM's
  # memory and, for the daemons, the port binaries' RSS. Each prints a
  # line of figures.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Notify, OSProcess}

  alias MuonTrap.Daemon

  @moduletag :soak
  @moduletag timeout: :infinity

  @runs 10_000
  @lifecycles 1_000
  @daemons 200

  # A controller-less v2 group beneath the BEAM's own works on every
  # layout this runs on: containment and teardown, no limits.
  @base "muontrap_soak"

  defp cgroup_dirs do
    for mount <- ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"],
        own = own_v2(),
        dir = Path.join([mount, own, @base]),
        File.dir?(dir),
        sub <- File.ls!(dir),
        do: sub
  end

  defp own_v2 do
    File.read!("/proc/self/cgroup")
    |> String.split("\n")
    |> Enum.find_value(fn
      "0::" <> path -> path
      _ -> nil
    end)
  end

  # Zombies the BEAM has not reaped: its children in state Z.
  defp zombies do
    beam = System.pid()

    for "/proc/" <> pid <- Path.wildcard("/proc/[0-9]*"),
        {:ok, stat} <- [File.read("/proc/#{pid}/stat")],
        [_, rest] = String.split(stat, ") ", parts: 2),
        ["Z", ^beam | _] <- [String.split(rest, " ", parts: 3)],
        do: pid
  end

  defp snapshot(m) do
    :erlang.garbage_collect()

    %{
      fds: length(Path.wildcard("/proc/#{System.pid()}/fd/*")),
      zombies: length(zombies()),
      left: length(all_pids_matching(m)),
      cgroups: length(cgroup_dirs()),
      memory_kb: div(:erlang.memory(:total), 1024)
    }
  end

  defp settle(before, m) do
    wait_until(fn -> all_pids_matching(m) == [] end, 30_000, "every process of #{m} to go")
    wait_until(fn -> cgroup_dirs() == [] end, 10_000, "every soak cgroup to go")
    wait_until(fn -> snapshot(m).fds <= before.fds end, 10_000, "the BEAM's descriptors")
    wait_until(fn -> snapshot(m).zombies <= before.zombies end, 10_000, "no new zombie")
    snapshot(m)
  end

  defp report(what, before, after_, extra) do
    IO.puts(
      "\nsoak #{what}: #{extra}; fds #{before.fds}->#{after_.fds}, zombies " <>
        "#{before.zombies}->#{after_.zombies}, left #{after_.left}, cgroups #{after_.cgroups}, " <>
        "BEAM memory #{before.memory_kb}->#{after_.memory_kb} KiB"
    )
  end

  defp cgroup_opts(i),
    do: if(rem(i, 2) == 0, do: [cgroup_base: @base, beneath_own_cgroup: true], else: [])

  # One run of kind rem(i, 5): :ok when it did what it should.
  defp mixed(i, m) do
    opts = cgroup_opts(i)

    case rem(i, 5) do
      0 ->
        tag = "run#{i}"
        {MuonTrap.cmd("echo", [tag, m], opts), {"#{tag} #{m}\n", 0}}

      1 ->
        {_, status} = MuonTrap.cmd(helper(), ["sleep", m], [timeout: 20] ++ opts)
        {status, :timeout}

      2 ->
        caller = spawn(fn -> MuonTrap.cmd(helper(), ["sleep", m], opts) end)
        Process.sleep(:rand.uniform(20))
        Process.exit(caller, :kill)
        {:ok, :ok}

      3 ->
        n = 1_000 + i

        got =
          MuonTrap.stream!(helper(), ["print_bytes", "#{n}", m], opts) |> Enum.map(&byte_size/1)

        {Enum.sum(got), n}

      4 ->
        data = :crypto.strong_rand_bytes(4_096 + i)
        {MuonTrap.cmd("cat", [], [input: data] ++ opts), {data, 0}}
    end
    |> then(fn {got, want} -> if got == want, do: :ok, else: {:failed, i, got} end)
  end

  test "10,000 mixed cmd/3 runs: normal, timed out, caller killed, streaming, with input" do
    m = marker()
    before = snapshot(m)
    started = System.monotonic_time(:millisecond)

    failures =
      1..@runs
      |> Task.async_stream(&mixed(&1, m), max_concurrency: 16, timeout: 60_000, ordered: false)
      |> Enum.reject(&(&1 == {:ok, :ok}))

    ms = System.monotonic_time(:millisecond) - started
    after_ = settle(before, m)
    report("cmd/3", before, after_, "#{@runs} runs in #{ms} ms, #{length(failures)} failed")
    assert failures == []
  end

  @lifecycle """
  notify("READY=1")
  notify("WATCHDOG=1")
  if sys.argv[2] == "flap":
      sys.exit(1)
  while True:
      notify("WATCHDOG=1")
      time.sleep(0.1)
  """

  # A flapping daemon: ready, fails, relaunched once, fails, stops. A
  # steady one: ready, then stopped.
  defp lifecycle(i, m) do
    kind = if rem(i, 2) == 0, do: "flap", else: "steady"
    {python, [_ | _] = args} = python(@lifecycle, m)
    args = args ++ [kind]

    opts =
      [ready: :notify, watchdog: 2_000, relaunch: [retries: 1, delay: 10]] ++
        cgroup_opts(div(i, 2))

    {:ok, pid} = Daemon.start_link(python, args, opts)
    Process.unlink(pid)
    ref = Process.monitor(pid)

    reason =
      if kind == "steady" do
        GenServer.stop(pid)
        :normal
      else
        :error_exit_status
      end

    receive do
      {:DOWN, ^ref, :process, ^pid, ^reason} -> :ok
      {:DOWN, ^ref, :process, ^pid, other} -> {:failed, i, other}
    after
      30_000 -> {:failed, i, :hang}
    end
  end

  test "1,000 daemon lifecycles with readiness, watchdog and relaunch" do
    m = marker()
    before = snapshot(m)
    started = System.monotonic_time(:millisecond)

    {failures, _log} =
      with_log(fn ->
        1..@lifecycles
        |> Task.async_stream(&lifecycle(&1, m),
          max_concurrency: 8,
          timeout: 60_000,
          ordered: false
        )
        |> Enum.reject(&(&1 == {:ok, :ok}))
      end)

    ms = System.monotonic_time(:millisecond) - started
    after_ = settle(before, m)

    report(
      "daemons",
      before,
      after_,
      "#{@lifecycles} lifecycles in #{ms} ms, #{length(failures)} failed"
    )

    assert failures == []
  end

  defp rss_kb(pid) do
    case File.read("/proc/#{pid}/status") do
      {:ok, status} ->
        Regex.run(~r/VmRSS:\s+(\d+)/, status, capture: :all_but_first)
        |> hd()
        |> String.to_integer()

      {:error, _} ->
        0
    end
  end

  test "200 daemons with chatty output for MUONTRAP_SOAK_MINUTES minutes" do
    minutes = String.to_integer(System.get_env("MUONTRAP_SOAK_MINUTES", "10"))
    m = marker()
    before = snapshot(m)
    counts = :counters.new(@daemons, [:write_concurrency])

    daemons =
      for i <- 1..@daemons do
        count = fn _line -> :counters.add(counts, i, 1) end
        opts = [logger_fun: count] ++ cgroup_opts(i)
        # A line every 50 ms: 4,000 lines a second in all.
        {:ok, pid} = Daemon.start_link(helper(), ["chatty", "0", "50", m], opts)
        pid
      end

    rss_start = daemons |> Enum.map(&rss_kb(Daemon.os_pid(&1)))
    Process.sleep(minutes * 60_000)
    rss_end = daemons |> Enum.map(&rss_kb(Daemon.os_pid(&1)))
    lines = for i <- 1..@daemons, do: :counters.get(counts, i)
    during = snapshot(m)
    assert Enum.all?(daemons, &Process.alive?/1)
    Enum.each(daemons, &GenServer.stop/1)
    after_ = settle(before, m)

    # At least half the lines a quiet machine would see, from every daemon.
    assert Enum.min(lines) >= div(minutes * 60 * 20, 2)

    report(
      "chatty daemons",
      before,
      after_,
      "#{@daemons} for #{minutes} min, #{Enum.sum(lines)} lines (#{Enum.min(lines)}..#{Enum.max(lines)} each), " <>
        "port RSS #{Enum.max(rss_start)}->#{Enum.max(rss_end)} KiB max, " <>
        "BEAM memory during #{during.memory_kb} KiB"
    )
  end
end
