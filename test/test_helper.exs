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

# Logs are shown only for failing tests.
ExUnit.start(exclude: [:soak | exclude], capture_log: true)
