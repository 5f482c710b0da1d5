defmodule MuonTrap.CgroupTest do
  # The group's life on real cgroup v2: created where asked, holding every
  # process, removed with them. Run where /sys/fs/cgroup is a v2 mount with
  # the cpu, memory and pids controllers (scripts/vm_test runs them in a
  # VM). Limits, statistics, cgroup_config and cgget/cgset are in
  # cgroup_limits_test.exs, which runs on every layout.
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
