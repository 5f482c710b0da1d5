defmodule MuonTrap.CgroupLayoutTest do
  # The host's cgroup layout is detected once per BEAM (by the NIF) and
  # handed to the supervisor in the command value: a supervisor started by
  # the library with a cgroup does not read /proc/self/mountinfo. Watched
  # for real with strace: the binary's path is swapped for a wrapper that
  # execs it under `strace -D -f`, and a new spawner is started from it.
  # The plain command line under the same wrapper does read mountinfo:
  # the observation works. Not async: the binary's path and the spawner
  # are global.
  use ExUnit.Case, async: false

  import MuonTrap.Test.{Faults, OSProcess}

  @moduletag :cgroup2
  @moduletag :strace

  setup do
    m = fault_marker()
    base = make_cgroup2_base(m)
    # The loaded library's instance and its port binary (MuonTrap.Nif.load/0).
    {instance, real} = :persistent_term.get({MuonTrap.Nif, :instance})
    dir = Path.join(System.tmp_dir!(), "muontrap_layout_#{m}")
    File.mkdir_p!(dir)
    trace = Path.join(dir, "trace")
    wrapper = Path.join(dir, "muontrap")

    File.write!(wrapper, """
    #!/bin/sh
    exec strace -D -f -qq -e trace=openat -o '#{trace}' '#{real}' "$@"
    """)

    File.chmod!(wrapper, 0o755)
    :persistent_term.put({MuonTrap.Nif, :instance}, {instance, wrapper})
    # The next command starts a spawner from the wrapper: its forks, the
    # supervisors, are traced too (-f).
    MuonTrap.Nif.spawner_stop()

    on_exit(fn ->
      :persistent_term.put({MuonTrap.Nif, :instance}, {instance, real})
      MuonTrap.Nif.spawner_stop()
      File.rm_rf!(dir)
    end)

    %{base: base, trace: trace, wrapper: wrapper}
  end

  # strace -D writes the trace as the tracee runs; the tracer may still be
  # finishing when the command has returned.
  defp trace_with(trace, needle) do
    wait_until(
      fn -> File.exists?(trace) and File.read!(trace) =~ needle end,
      5_000,
      fn -> "#{needle} in the trace: #{inspect(File.read(trace))}" end
    )

    File.read!(trace)
  end

  test "a command with a cgroup: the port gets the layout, reads no mountinfo", c do
    assert {"", 0} =
             MuonTrap.cmd("true", [], cgroup_base: "#{c.base}/pool", beneath_own_cgroup: true)

    # The port made its group and put the program in it: it was traced.
    text = trace_with(c.trace, "cgroup.procs")
    assert text =~ c.base
    refute text =~ "mountinfo"
    refute text =~ "/proc/self/cgroup"
  end

  test "the plain command line detects the layout itself", c do
    args = ["--beneath-own-cgroup", "-g", "#{c.base}/plain", "--no-controllers", "true"]
    assert {"", 0} = System.cmd(c.wrapper, args)
    assert trace_with(c.trace, "cgroup.procs") =~ "/proc/self/mountinfo"
  end
end
