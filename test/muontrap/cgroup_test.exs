defmodule MuonTrap.CgroupTest do
  # Real cgroup v2 tests: run where /sys/fs/cgroup is a v2 mount with the
  # cpu, memory and pids controllers (scripts/vm_test runs them in a VM).
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  @moduletag :cgroup
  @mount "/sys/fs/cgroup"

  # Test groups go beneath this VM's own cgroup, never beside it.
  defp base do
    Path.join([v2_own_cgroup() || "", "muontrap_test"]) |> String.trim_leading("/")
  end

  defp fresh_path, do: MuonTrap.Cgroup.random_path(base())
  defp dir(path), do: Path.join(@mount, path)

  defp own_cgroup_line(out) do
    out |> String.split("\n") |> Enum.find(&String.starts_with?(&1, "0::/"))
  end

  test "the command runs in a fresh group under :cgroup_base, removed afterwards" do
    {out, 0} = MuonTrap.cmd("cat", ["/proc/self/cgroup"], cgroup_base: base())
    "0::/" <> path = own_cgroup_line(out)
    assert String.starts_with?(path, base() <> "/")
    refute File.exists?(dir(path))
  end

  test "settings are written before the command starts" do
    path = fresh_path()

    {out, 0} =
      MuonTrap.cmd(
        "cat",
        [dir(path) <> "/memory.max", dir(path) <> "/pids.max", dir(path) <> "/cpu.max"],
        cgroup_path: path,
        cgroup: %{memory_max: 104_857_600, pids_max: 50, cpu_max: {50_000, 100_000}}
      )

    assert out == "104857600\n50\n50000 100000\n"
    refute File.exists?(dir(path))
  end

  test "every process in the group dies when the command exits" do
    path = fresh_path()
    {out, 0} = MuonTrap.cmd(helper(), ["fork_many", "4", "exit"], cgroup_path: path)
    pids = out |> String.split() |> Enum.map(&String.to_integer/1)
    assert length(pids) == 4
    assert Enum.filter(pids, &alive?/1) == []
    refute File.exists?(dir(path))
  end

  test "a daemonizing grandchild cannot escape the group" do
    path = fresh_path()
    {out, 0} = MuonTrap.cmd(helper(), ["daemonize"], cgroup_path: path)
    pid = out |> String.trim() |> String.to_integer()
    refute alive?(pid)
    refute File.exists?(dir(path))
  end

  test "everything dies and the group goes when the caller is killed" do
    path = fresh_path()
    m = marker()
    parent = self()

    caller =
      spawn(fn ->
        MuonTrap.cmd("sh", ["-c", "#{helper()} fork_many 3 #{m} & exec #{helper()} sleep #{m}"],
          cgroup_path: path,
          into: %Collect{to: parent}
        )
      end)

    wait_until(fn -> length(pids_matching(m)) == 5 end)
    pids = pids_matching(m)
    Process.exit(caller, :kill)
    wait_all_dead(pids)
    wait_until(fn -> not File.exists?(dir(path)) end, 5_000, "the group to be removed")
  end

  test "a memory limit gets an allocating command OOM-killed" do
    {out, status} =
      MuonTrap.cmd(helper(), ["alloc", "256"],
        cgroup_base: base(),
        cgroup: %{memory_max: 32 * 1024 * 1024}
      )

    assert {out, status} == {"", 128 + 9}
    # The same command fits without the limit.
    assert {"done 256\n", 0} = MuonTrap.cmd(helper(), ["alloc", "256"], cgroup_base: base())
  end

  test "pids_max stops a fork loop" do
    {out, status} =
      MuonTrap.cmd(helper(), ["fork_many", "50", "exit"],
        cgroup_base: base(),
        cgroup: %{pids_max: 5}
      )

    assert status == 3
    assert length(String.split(out)) < 5
  end

  test "an existing :cgroup_path is refused with a clear error" do
    path = fresh_path()
    File.mkdir_p!(dir(path))

    try do
      assert_raise MuonTrap.Error, ~r/muontrap: cgroup .* already exists/, fn ->
        MuonTrap.cmd("true", [], cgroup_path: path)
      end
    after
      File.rmdir!(dir(path))
    end
  end

  describe "Daemon cgroup functions" do
    setup do
      {:ok, pid} =
        Daemon.start_link(helper(), ["fork_many", "2"],
          cgroup_base: base(),
          cgroup: %{
            memory_max: 209_715_200,
            pids_max: 100,
            cpu_weight: 50,
            memory_oom_group: true
          }
        )

      wait_until(fn -> is_integer(Daemon.command_os_pid(pid)) end)
      path = Daemon.cgroup_path(pid)

      on_exit(fn ->
        wait_until(
          fn -> not File.exists?(dir(path)) end,
          5_000,
          "the daemon's group to be removed"
        )
      end)

      %{daemon: pid, path: path}
    end

    test "cgroup_path, cgget and cgset", %{daemon: pid, path: path} do
      assert String.starts_with?(path, base() <> "/")
      assert File.dir?(dir(path))
      assert {:ok, "209715200\n"} = Daemon.cgget(pid, "memory.max")
      assert :ok = Daemon.cgset(pid, "memory.max", "314572800")
      assert {:ok, "314572800\n"} = Daemon.cgget(pid, "memory.max")
      assert {:error, :enoent} = Daemon.cgget(pid, "no.such.file")
      assert {:error, :einval} = Daemon.cgget(pid, "../../../etc/passwd")
      assert {:error, :einval} = Daemon.cgset(pid, "../cgroup.procs", "1")
      GenServer.stop(pid)
    end

    test "cgroup_config round-trips into another daemon", %{daemon: pid} do
      config = Daemon.cgroup_config(pid)

      assert %{memory_max: 209_715_200, pids_max: 100, cpu_weight: 50, memory_oom_group: true} =
               config

      assert config.cpu_max == :max

      {:ok, twin} = Daemon.start_link(helper(), ["sleep"], cgroup_base: base(), cgroup: config)
      assert Daemon.cgroup_config(twin) == config
      GenServer.stop(twin)
      GenServer.stop(pid)
    end

    test "statistics report real figures", %{daemon: pid} do
      wait_until(
        fn -> Daemon.statistics(pid).cgroup["pids.current"] == 3 end,
        5_000,
        "3 processes"
      )

      stats = Daemon.statistics(pid).cgroup
      assert stats["memory.current"] > 0
      assert is_integer(stats["memory.peak"] || 0)
      assert %{"usage_usec" => usage} = stats["cpu.stat"]
      assert usage >= 0
      assert %{"max" => 0} = stats["pids.events"]
      assert %{"nr_descendants" => 0} = stats["cgroup.stat"]

      if psi = stats["memory.pressure"] do
        assert %{"some" => %{"avg10" => avg, "total" => total}} = psi
        assert is_float(avg) and is_integer(total)
      end

      GenServer.stop(pid)
    end
  end

  test "stopping a daemon removes its group and kills its descendants" do
    m = marker()

    capture_log(fn ->
      {:ok, pid} =
        Daemon.start_link(
          "sh",
          ["-c", "#{helper()} fork_many 3 #{m} & exec #{helper()} sleep #{m}"],
          cgroup_base: base()
        )

      wait_until(fn -> length(pids_matching(m)) == 5 end)
      path = Daemon.cgroup_path(pid)
      pids = pids_matching(m)
      GenServer.stop(pid)
      assert Enum.filter(pids, &alive?/1) == []
      refute File.exists?(dir(path))
    end)
  end
end
