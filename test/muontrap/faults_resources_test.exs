defmodule MuonTrap.FaultsResourcesTest do
  # Running out of resources: descriptors in the BEAM (EMFILE), processes
  # in the command's cgroup (EAGAIN from fork), and memory where the port
  # binary itself lives (it is OOM-killed). Each command gets a clear error
  # or succeeds; none hangs, and nothing is left.
  use ExUnit.Case, async: true

  import MuonTrap.Test.{Faults, OSProcess}

  alias MuonTrap.Test.Notify

  @moduletag timeout: 180_000

  @port_died "muontrap: the command's supervisor exited unexpectedly"

  describe "EMFILE: a BEAM with ulimit -n 64" do
    # 60 commands, a few ms apart, each holding ~6 descriptors for 0.2 s:
    # the first ones run, many of the later ones find none left.
    @script ~S"""
    # Every module loaded first, as a release does: out of descriptors, the
    # code server cannot load one either (the call fails with :undef),
    # whoever calls it.
    for app <- [:kernel, :stdlib, :elixir, :muontrap] do
      Application.load(app)
      {:ok, modules} = :application.get_key(app, :modules)
      Enum.each(modules, &Code.ensure_loaded/1)
    end

    m = System.get_env("MT_MARKER")
    fds = fn -> length(File.ls!("/proc/self/fd")) end
    # The spawner's request socket stays open for the BEAM's life.
    {"", 0} = MuonTrap.cmd("true", [])
    before = fds.()

    run = fn i ->
      Process.sleep(i * 3)
      args = ["-c", "sleep 0.2; echo #{m}-#{i}"]

      try do
        case rem(i, 2) do
          0 -> MuonTrap.cmd("sh", args)
          1 -> {Enum.join(MuonTrap.stream!("sh", args)), 0}
        end
      rescue
        e in MuonTrap.Error -> {:error, e.message}
      catch
        kind, reason -> {:other, kind, reason}
      end
    end

    results =
      0..59
      |> Enum.map(fn i -> {i, Task.async(fn -> run.(i) end)} end)
      |> Enum.map(fn {i, task} -> {i, Task.await(task, 60_000)} end)

    summary =
      Enum.frequencies_by(results, fn
        {i, {out, 0}} -> if out == "#{m}-#{i}\n", do: :ok, else: {:wrong, i, out}
        {_i, {:error, message}} -> {:error, message}
        {_i, other} -> other
      end)

    # Every descriptor is closed again (within 10 s), and a command runs.
    Enum.find(1..1000, fn _ -> fds.() <= before || (Process.sleep(10) && false) end)
    IO.puts("summary " <> inspect(summary))
    IO.puts("fds #{before} #{fds.()}")
    IO.puts("after " <> inspect(MuonTrap.cmd("echo", [m])))
    """

    test "many concurrent commands each succeed or raise MuonTrap.Error, and none hangs" do
      m = fault_marker()
      {port, _beam} = start_child_beam(@script, "ulimit -n 64; export MT_MARKER=#{m}")
      {summary, []} = Code.eval_string(child_line(port, "summary ", 90_000))

      [before, later] =
        child_line(port, "fds ") |> String.split() |> Enum.map(&String.to_integer/1)

      assert child_line(port, "after ") == inspect({"#{m}\n", 0})

      assert Enum.all?(
               Map.keys(summary),
               &(&1 == :ok or match?({:error, "muontrap: " <> _}, &1))
             ),
             inspect(summary)

      assert summary[:ok] > 0, inspect(summary)
      assert summary[:ok] < 60, "no command ran out of descriptors: #{inspect(summary)}"
      assert later <= before
      assert_nothing_left(m)
    end
  end

  describe "the port binary OOM-killed in a memory-limited group" do
    @describetag :cgroup_limits

    # The child BEAM runs in the limited group, and the command's shell
    # makes the port binary the OOM killer's first choice (an adjustment of
    # 1000 outweighs any process's share of the limit; raising one needs no
    # privilege): the command's allocations then get the port binary killed.
    @script ~S"""
    [helper, m, base] = System.argv()
    script = "echo 1000 > /proc/$PPID/oom_score_adj; exec #{helper} alloc 4096 #{m}"

    result =
      try do
        MuonTrap.cmd("sh", ["-c", script], cgroup_base: base, beneath_own_cgroup: true)
      rescue
        e in MuonTrap.Error -> {:error, e.message}
      end

    layout = MuonTrap.Cgroup.layout()
    v1 = Enum.find(layout.v1, &("memory" in &1.controllers))

    kills =
      if v1,
        do: File.read!(Path.join([v1.mount, v1.own, "memory.oom_control"])),
        else: File.read!(Path.join([layout.v2.mount, layout.v2.own, "memory.events"]))

    [_, kills] = Regex.run(~r/oom_kill (\d+)/, kills)
    IO.puts("result " <> inspect(result))
    IO.puts("oom_kill " <> kills)
    """

    @tag :linux
    test "the caller gets a clear error, and the command and its group are gone" do
      m = marker()
      base = "muontrap_faults_#{m}"
      on_exit(fn -> for dir <- cgroup_dirs(base), File.dir?(dir), do: File.rmdir(dir) end)
      file = Path.join(System.tmp_dir!(), "muontrap_oom_#{m}.exs")
      File.write!(file, @script)
      on_exit(fn -> File.rm(file) end)
      ebin = Path.join([Mix.Project.build_path(), "lib", "muontrap", "ebin"])

      # The child BEAM (and the spawner and supervisors it starts) made
      # an unlikely victim: a supervisor's pages are mostly shared with the
      # spawner, so its death frees little until its command dies too,
      # and a second OOM kill must not take the BEAM instead.
      elixir = System.find_executable("elixir")
      beam = "echo -500 > /proc/self/oom_score_adj; exec \"$0\" \"$@\""

      {out, 0} =
        MuonTrap.cmd("sh", ["-c", beam, elixir, "-pa", ebin, file, helper(), m, base],
          cgroup_base: base,
          beneath_own_cgroup: true,
          cgroup: %{memory_max: 400 * 1024 * 1024},
          stderr_to_stdout: true
        )

      assert out =~ "result " <> inspect({:error, @port_died}), out
      assert [_, kills] = Regex.run(~r/^oom_kill (\d+)$/m, out)
      assert String.to_integer(kills) >= 1
      assert pids_matching(m) == []
      assert_cgroup_removed(base)
    end
  end

  describe "EAGAIN: fork in a group with pids_max: 1" do
    @describetag :cgroup_limits

    setup do
      base = "muontrap_faults_#{marker()}"
      on_exit(fn -> for dir <- cgroup_dirs(base), File.dir?(dir), do: File.rmdir(dir) end)
      %{base: base, opts: [cgroup_base: base, beneath_own_cgroup: true, cgroup: %{pids_max: 1}]}
    end

    # The port made the base, and removes it with the group.
    defp assert_no_group(base), do: assert_cgroup_removed(base)

    @tag :linux
    test "the command sees fork fail with EAGAIN; its exit status comes back",
         %{opts: opts} = c do
      # The interpreter itself: pyenv's shim is a shell script that forks.
      script = "try:\n    os.fork()\nexcept OSError as e:\n    print(e.errno)\n"
      {python, args} = Notify.python(script, marker())
      assert {"11\n", 0} = MuonTrap.cmd(python, args, opts)
      assert_no_group(c.base)
    end

    @tag :linux
    test "a shell that cannot fork fails cleanly, and nothing is left", %{opts: opts} = c do
      m = marker()
      script = "#{helper()} sleep #{m} & wait; echo after"
      assert {out, status} = MuonTrap.cmd("sh", ["-c", script], [stderr_to_stdout: true] ++ opts)
      # dash: "sh: 0: Cannot fork", status 2.
      assert status != 0
      assert out =~ ~r/fork/i
      assert pids_matching(m) == []
      assert_no_group(c.base)
    end
  end
end
