defmodule MuonTrap.PlatformTest do
  # What the NIF reports of the platform, and the one ArgumentError for
  # what needs Linux where it is missing (docs/portability.md): run on the
  # portable build (MUONTRAP_PORTABLE=1), the code macOS runs.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.{Daemon, Platform}

  test "the platform as the NIF reports it: every rlimit is either there or missing" do
    info = Platform.info()
    assert info.os == :linux
    assert info.cgroups == info.notify
    assert info.portable == not info.cgroups
    all = MuonTrap.Nif.constants().rlimits ++ info.missing_rlimits
    assert Enum.sort(all) == Enum.sort(Enum.uniq(all))
    assert length(all) == 16
    assert info.missing_rlimits == []
  end

  @tag :portable
  test "what needs Linux is one ArgumentError naming the option and the platform" do
    for {opts, option} <- [
          {[cgroup_base: "muontrap"], ":cgroup_base"},
          {[cgroup_path: "muontrap/x"], ":cgroup_path"},
          {[cgroup: %{"memory.max" => "1M"}, cgroup_base: "m"], ":cgroup"},
          {[beneath_own_cgroup: true], ":beneath_own_cgroup"}
        ] do
      e = assert_raise ArgumentError, fn -> MuonTrap.cmd("true", [], opts) end
      assert e.message =~ option
      assert e.message =~ "needs Linux (cgroups)"
      assert e.message =~ "portable Linux build"
    end

    e = assert_raise ArgumentError, fn -> Daemon.start_link("true", [], ready: :notify) end
    assert e.message =~ "ready: :notify needs Linux (sd_notify)"
    e = assert_raise ArgumentError, fn -> Daemon.start_link("true", [], watchdog: 1000) end
    assert e.message =~ ":watchdog needs Linux (sd_notify)"
    # Refused before anything started.
    assert {"", 0} = MuonTrap.cmd("true", [], beneath_own_cgroup: false)
  end

  @tag :portable
  test "the cgroup functions of a daemon are an ArgumentError" do
    {:ok, d} = Daemon.start_link(helper(), ["sleep", marker()])

    for f <- [
          &Daemon.cgget(&1, "memory.current"),
          &Daemon.cgset(&1, "pids.max", "5"),
          &Daemon.cgroup_config/1
        ] do
      e = assert_raise ArgumentError, fn -> f.(d) end
      assert e.message =~ "needs Linux (cgroups)"
    end

    GenServer.stop(d)
  end

  @tag :portable
  test "the portable build runs commands contained in their process group" do
    m = marker()
    # A background child of the shell is in its group: gone with it, on a
    # timeout...
    script = "#{helper()} sleep #{m} & exec #{helper()} sleep #{m}"
    assert {_, :timeout} = MuonTrap.cmd("sh", ["-c", script], timeout: 300)
    wait_until(fn -> pids_matching(m) == [] end, 5_000, "the group to be gone")

    # ...and when the program exits first: no subreaper makes the child
    # ours, its process group is what is left to stop.
    m = marker()
    assert {"", 0} = MuonTrap.cmd("sh", ["-c", "#{helper()} sleep #{m} & exit 0"])
    wait_until(fn -> pids_matching(m) == [] end, 5_000, "the group to be gone")
  end
end
