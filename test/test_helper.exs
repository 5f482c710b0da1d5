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

# Groups without controllers (containment only) need just a cgroup2
# hierarchy: pure v2, or a hybrid host's /sys/fs/cgroup/unified.
exclude =
  if MuonTrap.Test.Faults.cgroup2_usable?() do
    exclude
  else
    IO.puts("no cgroup2 hierarchy to make groups in: skipping :cgroup2 tests")
    [:cgroup2 | exclude]
  end

# Watching the port binary's file opens needs strace (Debian: apt-get
# install strace).
exclude =
  if System.find_executable("strace") do
    exclude
  else
    IO.puts("strace is not installed: skipping :strace tests")
    [:strace | exclude]
  end

# The release port binary drops libgcc_s only on x86_64 Linux with glibc.
exclude =
  if String.starts_with?(to_string(:erlang.system_info(:system_architecture)), "x86_64") and
       String.contains?(to_string(:erlang.system_info(:system_architecture)), "linux-gnu"),
     do: exclude,
     else: [:x86_64_gnu | exclude]

# The portable build (MUONTRAP_PORTABLE=1, docs/portability.md), or a
# system other than Linux: as the NIF reports it, no cgroups and no
# sd_notify; tests of what needs Linux's own facilities (tag :linux) and
# every cgroup test are excluded. Tests of the refusals there (tag
# :portable) run only then.
exclude =
  case MuonTrap.Platform.info() do
    %{cgroups: true, notify: true} ->
      [:portable | exclude]

    platform ->
      IO.puts(
        "#{MuonTrap.Platform.describe(platform)}: skipping :linux and cgroup tests (docs/portability.md)"
      )

      [:linux, :cgroup, :cgroup_limits, :cgroup2, :doctor | exclude]
  end

# Logs are shown only for failing tests.
# Commands start in real OS processes: allow for a loaded 2-core machine.
ExUnit.start(exclude: [:soak | exclude], capture_log: true, assert_receive_timeout: 5_000)
