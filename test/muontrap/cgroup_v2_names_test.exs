defmodule MuonTrap.CgroupV2NamesTest do
  # cgget/cgset by v2 file name on every layout: on v1 and hybrid hosts
  # (this development machine) the names that native/muontrap_cgroup maps
  # to v1 files read and write those, converted; on pure v2
  # (scripts/vm_test) they are the files. The same assertions hold on
  # both. Groups go beneath the BEAM's own cgroup in every hierarchy.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess
  import MuonTrap.Test.Faults, only: [cgroup_dirs: 1]

  alias MuonTrap.{Cgroup, Daemon}

  @moduletag :cgroup_limits

  setup_all do
    base = "muontrap_test_#{marker()}"
    on_exit(fn -> remove_dirs(base) end)
    %{base: base}
  end

  defp opts(base, settings),
    do: [cgroup_base: base, beneath_own_cgroup: true, cgroup: settings]

  defp remove_dirs(path), do: for(dir <- cgroup_dirs(path), File.dir?(dir), do: File.rmdir(dir))

  defp stop(daemon) do
    path = Daemon.cgroup_path(daemon)
    GenServer.stop(daemon)

    wait_until(
      fn -> Enum.all?(cgroup_dirs(path), &(not File.exists?(&1))) end,
      5_000,
      fn -> "#{path} to be removed everywhere" end
    )
  end

  defp v1?(controller), do: controller in Cgroup.v1_controllers()

  test "v2 names read and write in the v2 text", %{base: base} do
    settings = %{
      memory_max: 100 * 1024 * 1024,
      cpu_max: {50_000, 100_000},
      cpu_weight: 50,
      pids_max: 100
    }

    capture_log(fn ->
      {:ok, pid} = Daemon.start_link(helper(), ["sleep"], opts(base, settings))
      assert {:ok, "104857600\n"} = Daemon.cgget(pid, "memory.max")
      assert :ok = Daemon.cgset(pid, "memory.max", "max")
      assert {:ok, "max\n"} = Daemon.cgget(pid, "memory.max")
      assert :ok = Daemon.cgset(pid, "memory.max", "209715200")
      assert Daemon.cgroup_config(pid).memory_max == 209_715_200
      assert {:error, :einval} = Daemon.cgset(pid, "memory.max", "lots")

      assert {:ok, "50000 100000\n"} = Daemon.cgget(pid, "cpu.max")
      assert :ok = Daemon.cgset(pid, "cpu.max", "max")
      assert {:ok, "max 100000\n"} = Daemon.cgget(pid, "cpu.max")
      assert {:ok, "50\n"} = Daemon.cgget(pid, "cpu.weight")
      assert :ok = Daemon.cgset(pid, "cpu.weight", "200")
      assert {:ok, "200\n"} = Daemon.cgget(pid, "cpu.weight")
      assert {:ok, "100\n"} = Daemon.cgget(pid, "pids.max")

      assert {:ok, current} = Daemon.cgget(pid, "memory.current")
      assert String.to_integer(String.trim(current)) > 0
      assert {:ok, stat} = Daemon.cgget(pid, "cpu.stat")
      assert stat =~ ~r/^usage_usec \d+$/m
      assert {:error, :enoent} = Daemon.cgget(pid, "no.such.file")

      if v1?("memory") do
        # The v1 names as before; memory.high has no v1 equivalent.
        assert {:ok, "209715200\n"} = Daemon.cgget(pid, "memory.limit_in_bytes")
        assert {:error, :enoent} = Daemon.cgget(pid, "memory.high")
        assert {:error, :enoent} = Daemon.cgset(pid, "memory.high", "1")
      else
        assert {:ok, "max\n"} = Daemon.cgget(pid, "memory.high")
      end

      # cpu.weight 200 is cpu.shares 200 * 1024 / 100.
      if v1?("cpu"), do: assert({:ok, "2048\n"} = Daemon.cgget(pid, "cpu.shares"))
      stop(pid)
    end)
  end

  # On v1, each of these changes needs its two files written in the one
  # order that keeps the group within its parent's 50 % at every step
  # (period first, the quota alone would be 500 %; quota first, 100 %).
  # v2 takes each in one write.
  test "cpu.max changes the kernel checks beneath a parent's limit", %{base: base} do
    limited = base <> "/limited"

    # After a failure the daemon's group may still be going when this runs.
    on_exit(fn ->
      wait_until(
        fn ->
          remove_dirs(limited)
          not Enum.any?(cgroup_dirs(limited), &File.exists?/1)
        end,
        5_000,
        "#{limited} to be removed"
      )
    end)

    if v1?("cpu") do
      h = Enum.find(Cgroup.layout().v1, &("cpu" in &1.controllers))
      dir = Path.join([h.mount, h.own, limited])
      File.mkdir_p!(dir)
      File.write!(Path.join(dir, "cpu.cfs_quota_us"), "50000")
    end

    capture_log(fn ->
      {:ok, pid} =
        Daemon.start_link(helper(), ["sleep"], opts(limited, %{cpu_max: {50_000, 100_000}}))

      for {value, shown} <- [
            {"5000 10000", "5000 10000\n"},
            {"50000 100000", "50000 100000\n"},
            {"max", "max 100000\n"},
            {"100000 200000", "100000 200000\n"}
          ] do
        assert {value, :ok} == {value, Daemon.cgset(pid, "cpu.max", value)}
        assert {:ok, ^shown} = Daemon.cgget(pid, "cpu.max")
      end

      # A period over 1 s is refused after the lower quota went in: it is
      # put back, as v2 changes nothing.
      assert {:error, :einval} = Daemon.cgset(pid, "cpu.max", "5000 2000000")
      assert {:ok, "100000 200000\n"} = Daemon.cgget(pid, "cpu.max")
      stop(pid)
    end)
  end
end
