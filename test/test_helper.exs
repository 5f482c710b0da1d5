exclude =
  if MuonTrap.Test.OSProcess.cgroup_v2_ready?() do
    []
  else
    IO.puts(
      "cgroup v2 with cpu/memory/pids is not mounted at /sys/fs/cgroup: skipping :cgroup tests (run scripts/vm_test)"
    )

    [:cgroup]
  end

# Dropping privileges needs root.
exclude = if System.cmd("id", ["-u"]) == {"0\n", 0}, do: exclude, else: [:root | exclude]

# Real limits on any layout (v1, hybrid or v2) need cpu, memory and pids.
exclude =
  if MuonTrap.Test.OSProcess.cgroup_limits_ready?() do
    exclude
  else
    IO.puts("no cgroup hierarchy offers cpu, memory and pids: skipping :cgroup_limits tests")
    [:cgroup_limits | exclude]
  end

# Logs are shown only for failing tests.
# Commands start in real OS processes: allow for a loaded 2-core machine.
ExUnit.start(exclude: [:soak | exclude], capture_log: true, assert_receive_timeout: 5_000)
