defmodule MuonTrap.SpawnerTest do
  # The resident spawner (docs/protocol.md, "Transport"): what each
  # supervisor holds, the spawner's death (running commands go on, queued
  # starts get one error), the environment and directory of the moment,
  # and no Erlang port per command.
  # Not async: it kills this BEAM's spawner, changes its environment and
  # directory, and counts its ports.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.{OSProcess, Spawner}

  alias MuonTrap.Daemon

  @moduletag timeout: 120_000

  describe "each supervisor's descriptors, during 200 concurrent starts" do
    test "only its own: one channel (fds 0 and 1), fd 2, a signalfd, a pidfd, its pipes" do
      spawner = spawner()
      %{3 => request} = fds(spawner)
      assert "socket:" <> _ = request
      m = marker()
      # Output alone, or output and a separate stderr: each command has
      # pipes of its own. Each runs longer than a scan of /proc takes
      # beside two CPU hogs (about 2 s), so scans see the commands run.
      script = fn i -> "echo #{m}.#{i}; echo e >&2; sleep 3" end

      tasks =
        for i <- 1..200 do
          Task.async(fn ->
            if rem(i, 2) == 0,
              do: MuonTrap.cmd("sh", ["-c", script.(i)], stderr_to_stdout: true),
              else:
                {MuonTrap.stream!("sh", ["-c", script.(i)], stderr: :separate) |> Enum.to_list(),
                 0}
          end)
        end

      samples = sample_supervisors(spawner, tasks, [])

      for {task, i} <- Enum.with_index(tasks, 1) do
        assert Task.await(task, 60_000) in [
                 {"#{m}.#{i}\ne\n", 0},
                 {[stdout: "#{m}.#{i}\n", stderr: "e\n"], 0},
                 {[stderr: "e\n", stdout: "#{m}.#{i}\n"], 0}
               ]
      end

      # Set up (it has a command), every supervisor was seen at least once.
      # Under load a supervisor may come and go between two snapshots.
      assert map_size(samples) >= 20, "only #{map_size(samples)} supervisors seen"
      check_own(samples, request, fds(spawner)[2], notices(spawner))
    end
  end

  # Snapshots of the descriptors of the spawner's children that run a
  # command until every task is done: pid => fds. Only a snapshot taken
  # while the command ran (it is there before and after) is kept: the
  # supervisor's set-up was over and its teardown not begun.
  defp sample_supervisors(spawner, tasks, acc) do
    seen =
      for {sup, command} <- running_children(spawner),
          f = fds(sup),
          alive?(command),
          do: {sup, f}

    acc = acc ++ seen

    if Enum.all?(tasks, &(Process.info(&1.pid) == nil)),
      do: Map.new(acc),
      else: sample_supervisors(spawner, tasks, acc)
  end

  # The end notices' pipe, the spawner's fd 4 (nil without notices).
  defp notices(spawner) do
    if MuonTrap.Platform.info().end_notices do
      assert "pipe:" <> _ = fds(spawner)[4]
    end
  end

  # `notices`: the spawner's fd 4 on Linux, the write end of the end
  # notices' pipe (docs/protocol.md, "End notices"), which every
  # supervisor shares by design: it only ever writes an id there. nil on
  # the portable build, which has none.
  defp check_own(samples, request, stderr, notices) do
    shared = if notices, do: [2, 4], else: [2]

    for {sup, fds} <- samples do
      assert fds[0] == fds[1] and match?("socket:" <> _, fds[0]), "#{sup}: #{inspect(fds)}"
      assert fds[2] == stderr, "#{sup}: #{inspect(fds)}"
      if notices, do: assert(fds[4] == notices, "#{sup}: #{inspect(fds)}")
      rest = fds |> Map.drop([0, 1 | shared]) |> Map.values()
      assert request not in Map.values(fds), "#{sup} holds the request socket: #{inspect(fds)}"
      # At most one of each (a supervisor seen as it finishes has closed them).
      assert Enum.count(rest, &(&1 == "anon_inode:[signalfd]")) <= 1, "#{sup}: #{inspect(fds)}"
      assert Enum.count(rest, &(&1 == "anon_inode:[pidfd]")) <= 1, "#{sup}: #{inspect(fds)}"

      # A former standby keeps its socket to the spawner until it has
      # reported STARTED (one socket, its own: see the check below).
      assert Enum.count(rest, &String.starts_with?(&1, "socket:")) <= 1, "#{sup}: #{inspect(fds)}"

      # /dev/null: the program's stdin while it is set up (on the
      # portable path, a fork that has not exec'd yet).
      assert Enum.all?(
               rest,
               &(&1 in ["anon_inode:[signalfd]", "anon_inode:[pidfd]", "/dev/null"] or
                   String.starts_with?(&1, ["pipe:", "socket:"]))
             ),
             "#{sup} holds more: #{inspect(fds)}"
    end

    # A channel or a pipe is one supervisor's only.
    owners =
      for {sup, fds} <- samples,
          link <- Enum.uniq(Map.values(Map.drop(fds, shared))),
          String.starts_with?(link, ["socket:", "pipe:"]),
          do: {link, sup}

    shared =
      owners
      |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
      |> Enum.filter(&(length(elem(&1, 1)) > 1))

    assert shared == [], "descriptors held by several supervisors: #{inspect(shared)}"
  end

  describe "the standby supervisor" do
    test "is forked ahead, takes the next request itself, and supervises that start" do
      spawner = spawner()
      %{1 => null, 3 => request} = fds(spawner)
      notices = if n = notices(spawner), do: %{4 => n}, else: %{}
      standby = wait_until(fn -> match?([_], s = standbys(spawner)) && hd(s) end)
      # Its socket to the spawner, the spawner's /dev/null and stderr, the
      # request socket it takes one request from, and on Linux the end
      # notices' pipe: no other command's descriptor.
      assert %{0 => "socket:" <> _ = socket, 1 => ^null, 2 => _, 3 => ^request} = fds(standby)
      assert Map.take(fds(standby), [4]) == notices
      assert map_size(fds(standby)) == 4 + map_size(notices)
      assert socket != request

      capture_log(fn ->
        {:ok, d} = Daemon.start_link("sleep", ["1000"], [])
        assert Daemon.os_pid(d) == standby
        # Once it took its request, it holds the request socket no more.
        wait_until(fn -> fds(standby)[1] != null end)
        refute request in Map.values(fds(standby))
        # The next one is forked after it.
        next = wait_until(fn -> match?([_], s = standbys(spawner)) && hd(s) end)
        assert next != standby
        GenServer.stop(d)
        wait_all_dead([standby])
      end)
    end
  end

  describe "the spawner SIGKILLed" do
    test "while 20 commands and 5 daemons run: they all go on, and a new command works at once" do
      m = marker()
      old = spawner()
      parent = self()
      script = "echo #{m} start; sleep 2; echo #{m} end"

      cmds = for _ <- 1..20, do: Task.async(fn -> MuonTrap.cmd("sh", ["-c", script]) end)

      capture_log(fn ->
        daemons =
          for i <- 1..5 do
            {:ok, d} =
              Daemon.start_link("sh", ["-c", "echo #{m}.#{i}; exec sleep 1000"],
                logger_fun: &send(parent, {:line, i, &1})
              )

            d
          end

        for i <- 1..5, do: assert_receive({:line, ^i, _}, 15_000)
        # Every command runs (its supervisor forked by the old spawner).
        wait_until(fn -> length(pids_matching("#{m} start")) >= 20 end)
        sups = Enum.map(daemons, &Daemon.os_pid/1)
        kill_spawner(old)

        {us, {"x\n", 0}} = :timer.tc(fn -> MuonTrap.cmd("echo", ["x"]) end)
        assert us < 1_000_000, "the first command after the kill took #{div(us, 1000)} ms"
        # That one may have been served by the old spawner's standby,
        # which takes a request queued before it saw its spawner gone; the
        # next one finds nobody on the old request socket.
        assert MuonTrap.cmd("echo", ["y"]) == {"y\n", 0}
        assert MuonTrap.Nif.spawner_pid() != old

        for t <- cmds, do: assert(Task.await(t, 30_000) == {"#{m} start\n#{m} end\n", 0})
        assert Enum.all?(daemons, &Process.alive?/1)
        assert Enum.all?(sups, &alive?/1)
        for d <- daemons, do: assert(GenServer.stop(d) == :ok)
        wait_all_dead(sups)
        assert_sessions_empty([old])
      end)
    end

    test "during 200 concurrent starts: each caller gets its result or one error, none hangs" do
      m = marker()
      old = spawner()
      parent = self()

      tasks =
        for i <- 1..200 do
          Task.async(fn ->
            send(parent, :starting)

            try do
              MuonTrap.cmd("echo", ["#{m}.#{i}"])
            rescue
              e in MuonTrap.Error -> {:raised, e.message}
            end
          end)
        end

      # Some starts are queued or running when it dies.
      for _ <- 1..50, do: assert_receive(:starting, 10_000)
      kill_spawner(old)
      results = Enum.map(tasks, &Task.yield(&1, 30_000))
      assert Enum.all?(results, &(&1 != nil)), "#{Enum.count(results, &is_nil/1)} hung"

      {ok, errors} =
        results
        |> Enum.with_index(1)
        |> Enum.split_with(fn {{:ok, r}, i} -> r == {"#{m}.#{i}\n", 0} end)

      assert Enum.all?(errors, &match?({{:ok, {:raised, _}}, _}, &1)), inspect(errors)

      report("200 starts, the spawner killed: #{length(ok)} ran, #{length(errors)} got an error")
      assert MuonTrap.cmd("echo", [m]) == {"#{m}\n", 0}
      assert_sessions_empty([old])
    end
  end

  describe "the environment and directory of the moment" do
    setup do
      cwd = File.cwd!()
      on_exit(fn -> File.cd!(cwd) end)
      :ok
    end

    test "put_env, delete_env and cd after the spawner started reach the next command" do
      _ = spawner()
      m = marker()
      var = "MUONTRAP_TEST_#{m}"
      dir = Path.join(System.tmp_dir!(), "muontrap_cwd_#{m}")
      File.mkdir_p!(dir)
      on_exit(fn -> System.delete_env(var) end)
      on_exit(fn -> File.rm_rf(dir) end)

      System.put_env(var, "set after the spawner")
      File.cd!(dir)
      # The BEAM's own getcwd(3): /tmp may be a link.
      here = File.cwd!()

      {out, 0} = MuonTrap.cmd("sh", ["-c", "echo \"$#{var}\"; pwd -P"])
      assert out == "set after the spawner\n#{here}\n"

      # A variable the spawner itself was started with (every BEAM has
      # PATH and HOME; LANG is not sure) is gone once deleted.
      assert System.get_env("HOME")
      home = System.get_env("HOME")
      assert File.read!("/proc/#{MuonTrap.Nif.spawner_pid()}/environ") =~ "HOME=#{home}\0"
      System.delete_env("HOME")

      try do
        assert MuonTrap.cmd("sh", ["-c", "echo \"[${HOME-unset}]\""]) == {"[unset]\n", 0}
      after
        System.put_env("HOME", home)
      end
    end

    # The environment goes packed when every code point is below 256
    # (env_block.rs), as pairs otherwise: both reach the command as
    # System.cmd/3 gives them, in UTF-8.
    test "non-ASCII values arrive as System.cmd/3 passes them, packed or not" do
      var = "MUONTRAP_TEST_#{marker()}"
      on_exit(fn -> System.delete_env(var) end)
      script = ["-c", "printf '%s' \"$#{var}\" | od -An -tx1"]

      for value <- ["café", "naïve ÿ", "→ arrow, ünïcödé"] do
        System.put_env(var, value)
        {bytes, 0} = System.cmd("sh", script)
        assert MuonTrap.cmd("sh", script) == {bytes, 0}
        assert bytes =~ "c3"
      end
    end
  end

  describe "no Erlang port per running command" do
    test "cmd/3, stream!/3 and daemons: Port.list/0 does not grow" do
      _ = spawner()
      m = marker()
      ports = Port.list()

      cmds =
        for _ <- 1..5, do: Task.async(fn -> MuonTrap.cmd("sh", ["-c", "sleep 1; : #{m}"]) end)

      parent = self()

      streams =
        for _ <- 1..5 do
          Task.async(fn ->
            MuonTrap.stream!("sh", ["-c", "echo #{m}; sleep 1"]) |> Enum.to_list()
          end)
        end

      capture_log(fn ->
        daemons =
          for _ <- 1..5 do
            {:ok, d} =
              Daemon.start_link("sh", ["-c", "echo up; exec #{helper()} sleep #{m}"],
                logger_fun: &send(parent, {:line, &1})
              )

            d
          end

        for _ <- 1..5, do: assert_receive({:line, _}, 15_000)
        wait_until(fn -> length(pids_matching(m)) >= 15 end)
        assert Port.list() -- ports == []
        for d <- daemons, do: GenServer.stop(d)
      end)

      assert Enum.map(cmds, &Task.await(&1, 15_000)) == List.duplicate({"", 0}, 5)
      assert Enum.map(streams, &Task.await(&1, 15_000)) == List.duplicate(["#{m}\n"], 5)
      assert Port.list() -- ports == []
    end
  end
end
