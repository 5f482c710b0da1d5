exclude =
  if MuonTrap.Test.OSProcess.cgroup_v2_ready?() do
    []
  else
    IO.puts(
      "cgroup v2 with cpu/memory/pids is not mounted at /sys/fs/cgroup: skipping :cgroup tests (run scripts/vm_test)"
    )

    [:cgroup]
  end

# Logs are shown only for failing tests.
ExUnit.start(exclude: [:soak | exclude], capture_log: true)
