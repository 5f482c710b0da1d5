defmodule MuonTrap.CgroupLimitsTest do
  # Real limits, statistics, cgroup_config and cgget/cgset through the same
  # :cgroup map on whatever layout the host has: v1 and hybrid hosts (this
  # development machine: v1 controllers plus an empty cgroup2 at
  # /sys/fs/cgroup/unified) and pure v2 (scripts/vm_test). Groups go beneath
  # the BEAM's own cgroup in every hierarchy (:beneath_own_cgroup), never
  # beside it. The group's own life (creation, containment, removal) is in
  # cgroup_test.exs.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess
  import MuonTrap.Test.Faults, only: [cgroup_dirs: 1]

  alias MuonTrap.{Cgroup, Daemon}

  @moduletag :cgroup_limits

  setup_all do
    base = "muontrap_test_#{marker()}"

    on_exit(fn ->
      # The port removes the leaves; the base is the test's to remove.
      for dir <- cgroup_dirs(base), File.dir?(dir), do: File.rmdir(dir)
    end)

    %{base: base}
  end

  defp opts(base, settings),
    do: [cgroup_base: base, beneath_own_cgroup: true, cgroup: settings]

  defp assert_removed(path) do
    wait_until(
      fn -> Enum.all?(cgroup_dirs(path), &(not File.exists?(&1))) end,
      5_000,
      fn ->
        "#{path} to be removed everywhere: #{inspect(Enum.filter(cgroup_dirs(path), &File.exists?/1))}"
      end
    )
  end

  defp v1?(controller), do: controller in Cgroup.v1_controllers()

  test "a memory limit gets an allocating command OOM-killed", %{base: base} do
    # No swap to escape to: memory.swap.max on v2, memsw on v1.
    swap = if swap_accounting?(), do: %{memory_swap_max: 0}, else: %{}

    assert {"", 137} =
             MuonTrap.cmd(
               helper(),
               ["alloc", "256"],
               opts(base, Map.merge(%{memory_max: 32 * 1024 * 1024}, swap))
             )

    assert {"done 256\n", 0} =
             MuonTrap.cmd(
               helper(),
               ["alloc", "256"],
               opts(base, %{memory_max: 512 * 1024 * 1024})
             )
  end

  defp swap_accounting? do
    if v1?("memory") do
      h = Enum.find(Cgroup.layout().v1, &("memory" in &1.controllers))
      File.exists?(Path.join([h.mount, h.own, "memory.memsw.limit_in_bytes"]))
    else
      File.exists?(Path.join(Cgroup.layout().v2.mount, "memory.swap.current")) or
        File.exists?(
          Path.join([Cgroup.layout().v2.mount, v2_own_cgroup() || "", "memory.swap.max"])
        )
    end
  end

  test "pids_max stops a fork loop", %{base: base} do
    {out, status} =
      MuonTrap.cmd(helper(), ["fork_many", "50", "exit"], opts(base, %{pids_max: 5}))

    assert status == 3
    assert length(String.split(out)) < 5
  end

  test "a CPU quota holds a busy loop near its share, measured from cpu.stat", %{base: base} do
    capture_log(fn ->
      {:ok, pid} =
        Daemon.start_link(helper(), ["spin"], opts(base, %{cpu_max: {20_000, 100_000}}))

      path = Daemon.cgroup_path(pid)
      usage = fn -> Daemon.statistics(pid).cgroup["cpu.stat"]["usage_usec"] end
      {t0, u0} = {System.monotonic_time(:millisecond), usage.()}
      wait_until(fn -> usage.() - u0 >= 300_000 end, 10_000, "300 ms of CPU time")
      elapsed_ms = System.monotonic_time(:millisecond) - t0
      # 300 ms at 20 % takes ~1.5 s of wall time; unthrottled, 0.3 s.
      share = 300 / elapsed_ms
      assert share > 0.1 and share < 0.3, "share #{share}"
      assert %{"nr_throttled" => throttled} = Daemon.statistics(pid).cgroup["cpu.stat"]
      assert throttled > 0
      GenServer.stop(pid)
      assert_removed(path)
    end)
  end

  # The group's file in the v2 hierarchy, where statistics/1 reads the
  # files that have no v1 equivalent (pressure, cgroup.stat).
  defp v2_file(path, file) do
    case Cgroup.layout().v2 do
      %{own: own} = v2 when own != nil -> Path.join([v2.mount, own, path, file])
      _ -> nil
    end
  end

  # Whether the kernel provides the file statistics/1 reads for memory.peak
  # (Linux 5.19+ on v2; memory.max_usage_in_bytes on v1).
  defp memory_peak_file?(daemon) do
    file = if v1?("memory"), do: "memory.max_usage_in_bytes", else: "memory.peak"
    match?({:ok, _}, Daemon.cgget(daemon, file))
  end

  test "statistics report the group's figures under the v2 names", %{base: base} do
    # A setting for each controller, so that each counts the group (on v1,
    # a hierarchy is joined only for a controller in use).
    settings = %{memory_max: 200 * 1024 * 1024, pids_max: 100, cpu_weight: 50}

    capture_log(fn ->
      {:ok, pid} = Daemon.start_link(helper(), ["fork_many", "2"], opts(base, settings))

      wait_until(
        fn -> Daemon.statistics(pid).cgroup["pids.current"] == 3 end,
        5_000,
        "3 processes"
      )

      path = Daemon.cgroup_path(pid)
      stats = Daemon.statistics(pid).cgroup
      current = stats["memory.current"]
      assert is_integer(current) and current > 0

      if memory_peak_file?(pid) do
        peak = stats["memory.peak"]
        assert is_integer(peak) and peak >= current, "memory.peak #{inspect(peak)}"
      end

      # Three processes were started: some CPU time was spent.
      assert %{"usage_usec" => usage} = stats["cpu.stat"]
      assert is_integer(usage) and usage > 0, "usage_usec #{inspect(usage)}"
      assert %{"max" => 0} = stats["pids.events"]

      if v2_file(path, "cgroup.stat") do
        assert %{"nr_descendants" => 0} = stats["cgroup.stat"]
      end

      if (file = v2_file(path, "memory.pressure")) && File.exists?(file) do
        assert %{"some" => %{"avg10" => avg, "total" => total}} = stats["memory.pressure"]
        assert is_float(avg) and is_integer(total)
      end

      GenServer.stop(pid)
      assert_removed(path)
    end)
  end

  test "cgroup_config reports the settings under the v2 keys, and starts a twin", %{base: base} do
    # memory.oom.group has no v1 equivalent.
    settings =
      Map.merge(
        %{memory_max: 200 * 1024 * 1024, pids_max: 100, cpu_weight: 50},
        if(v1?("memory"), do: %{}, else: %{memory_oom_group: true})
      )

    capture_log(fn ->
      {:ok, pid} = Daemon.start_link(helper(), ["sleep"], opts(base, settings))
      config = Daemon.cgroup_config(pid)
      assert Map.take(config, Map.keys(settings)) == settings
      assert config.cpu_max == :max

      {:ok, twin} = Daemon.start_link(helper(), ["sleep"], opts(base, config))
      assert Daemon.cgroup_config(twin) == config

      for daemon <- [twin, pid] do
        path = Daemon.cgroup_path(daemon)
        GenServer.stop(daemon)
        assert_removed(path)
      end
    end)
  end

  test "cgget/cgset reach the hierarchy of the file's controller", %{base: base} do
    capture_log(fn ->
      {:ok, pid} =
        Daemon.start_link(helper(), ["sleep"], opts(base, %{memory_max: 100 * 1024 * 1024}))

      path = Daemon.cgroup_path(pid)
      assert String.starts_with?(path, base <> "/")
      file = if v1?("memory"), do: "memory.limit_in_bytes", else: "memory.max"
      assert {:ok, "104857600\n"} = Daemon.cgget(pid, file)
      # cgroup_config/1 keeps its files open between calls: still fresh.
      assert Daemon.cgroup_config(pid).memory_max == 104_857_600
      assert :ok = Daemon.cgset(pid, file, "209715200")
      assert {:ok, "209715200\n"} = Daemon.cgget(pid, file)
      assert Daemon.cgroup_config(pid).memory_max == 209_715_200
      assert {:ok, procs} = Daemon.cgget(pid, "cgroup.procs")
      assert String.trim(procs) == "#{Daemon.command_os_pid(pid)}"
      assert {:error, :enoent} = Daemon.cgget(pid, "no.such.file")
      assert {:error, :einval} = Daemon.cgget(pid, "../cgroup.procs")
      assert {:error, :einval} = Daemon.cgget(pid, "../../../etc/passwd")
      assert {:error, :einval} = Daemon.cgset(pid, "../cgroup.procs", "1")
      GenServer.stop(pid)
      assert_removed(path)
    end)
  end

  test "settings without a v1 equivalent are an ArgumentError on v1", %{base: base} do
    if v1?("memory") do
      assert_raise ArgumentError, ~r/:memory_high has no cgroup v1 equivalent/, fn ->
        MuonTrap.cmd("true", [], opts(base, %{memory_high: 1_000_000}))
      end

      assert_raise ArgumentError, ~r/needs an integer :memory_max/, fn ->
        MuonTrap.cmd("true", [], opts(base, %{memory_swap_max: 0}))
      end
    else
      assert {"", 0} = MuonTrap.cmd("true", [], opts(base, %{memory_high: 1_000_000}))
    end
  end

  test "if the port binary is SIGKILLed, the Elixir side kills the group and removes it", %{
    base: base
  } do
    m = marker()
    parent = self()
    path = Cgroup.random_path(base)

    task =
      Task.async(fn ->
        try do
          MuonTrap.cmd(
            "sh",
            [
              "-c",
              "#{helper()} daemonize #{m}; #{helper()} fork_many 3 #{m} & exec #{helper()} sleep #{m}"
            ],
            cgroup_path: path,
            beneath_own_cgroup: true,
            cgroup: %{pids_max: 100},
            into: %Collect{to: parent}
          )
        rescue
          e in MuonTrap.Error -> {:raised, e.message}
        end
      end)

    wait_until(fn -> length(pids_matching(m)) == 6 end, 30_000, "6 processes")
    pids = pids_matching(m)
    assert Enum.any?(cgroup_dirs(path), &File.dir?/1)
    [port_binary] = port_binaries_matching(m)
    {_, 0} = System.cmd("kill", ["-KILL", "#{port_binary}"])

    assert {:raised, "muontrap: the command's supervisor exited unexpectedly"} = Task.await(task)

    # Everything, including the daemonized grandchild that escaped the
    # dead port's process tree, was killed through the cgroup.
    wait_all_dead(pids)
    assert_removed(path)
  end

  # Found through their programs: a port binary's command line holds none.
  defp port_binaries_matching(m), do: MuonTrap.Test.Faults.port_binaries_matching(m)
end
