defmodule MuonTrap.FidelityTest do
  # Behaviour of MuonTrap 2.0 that code written for it relies on, and the
  # errors a hurried user meets.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  test "a Daemon with capture_stderr_only and no log option still counts stderr" do
    {:ok, pid} =
      Daemon.start_link(
        "sh",
        ["-c", "echo out; echo twelve bytes >&2; exec #{helper()} sleep"],
        capture_stderr_only: true
      )

    wait_until(fn -> Daemon.statistics(pid).output_byte_count == 13 end)
    GenServer.stop(pid)
  end

  test "a Daemon with no log option captures nothing and counts 0" do
    {:ok, pid} = Daemon.start_link("sh", ["-c", "echo out; exec #{helper()} sleep"], [])

    wait_until(fn -> is_integer(Daemon.command_os_pid(pid)) end)
    Process.sleep(100)
    assert Daemon.statistics(pid).output_byte_count == 0
    GenServer.stop(pid)
  end

  test "a :cd that does not exist is one clear error naming it" do
    error =
      assert_raise MuonTrap.Error, fn -> MuonTrap.cmd("echo", ["x"], cd: "/nonexistent/mt") end

    assert error.message ==
             "muontrap: cannot run in :cd \"/nonexistent/mt\": no such file or directory"

    assert_raise MuonTrap.Error, ~r/not a directory/, fn ->
      MuonTrap.cmd("echo", ["x"], cd: "/etc/passwd")
    end

    Process.flag(:trap_exit, true)

    assert {:error, {%MuonTrap.Error{message: "muontrap: cannot run in :cd" <> _}, _}} =
             Daemon.start_link("echo", ["x"], cd: "/nonexistent/mt")
  end

  test "an argument list the kernel refuses raises :e2big, as a failed exec does" do
    big = String.duplicate("a", 3_000_000)
    assert_raise ErlangError, ~r/e2big/, fn -> MuonTrap.cmd("echo", [big]) end

    Process.flag(:trap_exit, true)
    {:ok, pid} = Daemon.start_link("echo", [big], log_output: :debug)
    assert_receive {:EXIT, ^pid, :e2big}, 5_000
  end

  test "a non-existent user or group is one clear MuonTrap.Error" do
    for opts <- [[uid: "no_such_user_mt"], [gid: "no_such_group_mt"]] do
      error = assert_raise MuonTrap.Error, fn -> MuonTrap.cmd("echo", ["x"], opts) end
      assert error.message =~ "no_such_"
      refute error.message =~ "\n"
    end
  end
end

defmodule MuonTrap.CgroupParentsTest do
  # cgroup_base: "x" creates a missing x (mkdir -p, as MuonTrap 2.0 does),
  # and removes it again once the last command using it is gone.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Cgroup

  @moduletag :cgroup_limits

  defp dirs(path) do
    layout = Cgroup.layout()

    for h <- List.wrap(layout.v2) ++ layout.v1,
        h.own != nil,
        do: Path.join([h.mount, h.own, path])
  end

  test "parents MuonTrap created are removed once empty, with concurrent commands" do
    base = "muontrap_parents_#{marker()}"
    on_exit(fn -> for d <- dirs(base), File.dir?(d), do: File.rmdir(d) end)

    results =
      1..8
      |> Task.async_stream(
        fn i ->
          MuonTrap.cmd("sh", ["-c", "sleep 0.0#{i}; echo #{i}"],
            cgroup_base: "#{base}/pool",
            beneath_own_cgroup: true,
            cgroup: %{pids_max: 20}
          )
        end,
        max_concurrency: 8,
        timeout: 30_000
      )
      |> Enum.map(fn {:ok, {out, 0}} -> String.trim(out) end)

    assert Enum.sort(results) == Enum.map(1..8, &to_string/1)
    wait_until(fn -> Enum.all?(dirs(base), &(not File.exists?(&1))) end, 5_000, "#{base} removed")
  end

  test "a base that existed before is kept" do
    base = "muontrap_kept_#{marker()}"
    made = for d <- dirs(base), File.mkdir(d) == :ok, do: d
    on_exit(fn -> Enum.each(made, &File.rmdir/1) end)

    assert {"x\n", 0} =
             MuonTrap.cmd("echo", ["x"],
               cgroup_base: base,
               beneath_own_cgroup: true,
               cgroup: %{pids_max: 5}
             )

    assert Enum.all?(made, &File.dir?/1)

    assert Enum.all?(
             made,
             &(File.ls!(&1) |> Enum.filter(fn f -> File.dir?(Path.join(&1, f)) end) == [])
           )
  end
end
