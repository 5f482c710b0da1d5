defmodule MuonTrapTest do
  use ExUnit.Case, async: true
  doctest MuonTrap

  import MuonTrap.Test.OSProcess

  describe "cmd/3 like System.cmd/3" do
    test "returns output and exit status" do
      assert MuonTrap.cmd("echo", ["hello", "world"]) == {"hello world\n", 0}
      assert MuonTrap.cmd("sh", ["-c", "exit 7"]) == {"", 7}
      assert MuonTrap.cmd("true", []) == {"", 0}
    end

    test "a command killed by a signal gives 128 + the signal" do
      assert MuonTrap.cmd(helper(), ["kill_self", "9"]) == {"bye\n", 137}
      assert MuonTrap.cmd(helper(), ["kill_self", "15"]) == {"bye\n", 143}
    end

    test ":into collects into any Collectable" do
      assert {["a\nb\n"], 0} = MuonTrap.cmd("printf", ["a\\nb\\n"], into: [])
      {stream_out, 0} = MuonTrap.cmd(helper(), ["chatty", "3", "0"], into: %MapSet{})
      assert Enum.join(stream_out) == "line 1\nline 2\nline 3\n"
    end

    test ":cd runs in a directory" do
      assert MuonTrap.cmd("pwd", [], cd: "/tmp") == {"/tmp\n", 0}
    end

    test ":env sets and unsets variables" do
      System.put_env("MUONTRAP_TEST_UNSET_ME", "present")

      {out, 0} =
        MuonTrap.cmd("sh", ["-c", "echo \"$FOO:${MUONTRAP_TEST_UNSET_ME-gone}\""],
          env: [{"FOO", "bar"}, {"MUONTRAP_TEST_UNSET_ME", nil}]
        )

      assert out == "bar:gone\n"
    end

    test ":arg0 sets argv[0]" do
      assert MuonTrap.cmd("sh", ["-c", "echo $0"], arg0: "renamed") == {"renamed\n", 0}
    end

    test "stderr is not captured by default, merged with :stderr_to_stdout, alone with :capture_stderr_only" do
      assert MuonTrap.cmd(helper(), ["out_err", "OUT", "ERR"], stderr_to_stdout: true) ==
               {"OUTERR", 0}

      assert MuonTrap.cmd(helper(), ["out_err", "OUT", "ERR"], capture_stderr_only: true) ==
               {"ERR", 0}

      # By default stderr is neither collected nor discarded: the command's
      # fd 2 is the BEAM's own, as with System.cmd/3. (capture_io cannot
      # show that: it sees the BEAM's :standard_error, not fd 2.)
      {:ok, beam_stderr} = File.read_link("/proc/#{System.pid()}/fd/2")
      assert MuonTrap.cmd("readlink", ["/proc/self/fd/2"]) == {beam_stderr <> "\n", 0}
    end

    test ":parallelism is accepted" do
      assert MuonTrap.cmd("echo", ["p"], parallelism: true) == {"p\n", 0}
    end

    test "a missing executable raises :enoent like System.cmd/3" do
      assert_raise ErlangError, ~r/enoent/, fn -> MuonTrap.cmd("no_such_program_muontrap", []) end
    end

    test "exec errors match System.cmd/3 for every way of naming the program" do
      # Bare names are looked up by the port (execvp) unless :env sets PATH;
      # names with a slash behave as in System.cmd/3.
      for {command, opts} <- [
            {"no_such_program_muontrap", []},
            {"no_such_program_muontrap", [env: [{"PATH", "/usr/bin:/bin"}]]},
            {"/no/such/program", []},
            {"./no_such_program", []},
            {"/etc/passwd", []}
          ] do
        expected = catch_error(System.cmd(command, [], opts))
        assert catch_error(MuonTrap.cmd(command, [], opts)) == expected, inspect({command, opts})
      end
    end

    test "a PATH given in :env does not change which program runs, as in System.cmd/3" do
      # System.cmd/3 searches the BEAM's PATH; the command then sees the new one.
      opts = [env: [{"PATH", "/nonexistent"}]]

      assert MuonTrap.cmd("sh", ["-c", "echo $PATH"], opts) ==
               System.cmd("sh", ["-c", "echo $PATH"], opts)
    end

    test "a program that cannot be exec'd leaves no port binary behind" do
      marker = MuonTrap.Test.OSProcess.marker()

      assert_raise ErlangError, ~r/enoent/, fn ->
        MuonTrap.cmd("no_such_program_muontrap", [marker])
      end

      # The port binary's own command line holds the marker too.
      MuonTrap.Test.OSProcess.wait_until(fn ->
        Enum.all?(Path.wildcard("/proc/[0-9]*/cmdline"), fn f ->
          case File.read(f) do
            {:ok, cmdline} -> not String.contains?(cmdline, marker)
            {:error, _} -> true
          end
        end)
      end)
    end
  end

  describe "privileges" do
    # The suite runs as root here; elsewhere these are skipped.
    @describetag :root

    test ":uid by name also takes the user's groups" do
      assert MuonTrap.cmd("id", [], uid: "nobody") ==
               {"uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n", 0}
    end

    test ":uid, :gid and :groups by number" do
      assert MuonTrap.cmd("id", [], uid: 65534, gid: 1, groups: [2, "sys"]) ==
               {"uid=65534(nobody) gid=1(daemon) groups=1(daemon),2(bin),3(sys)\n", 0}
    end

    test "groups: [] drops every supplementary group" do
      {out, 0} = MuonTrap.cmd("id", ["-G"], uid: 65534, gid: 65534, groups: [])
      assert out == "65534\n"
    end

    test "an unknown user or group is a clear error" do
      assert_raise MuonTrap.Error, ~r/muontrap: .*no_such_user_mt/, fn ->
        MuonTrap.cmd("true", [], uid: "no_such_user_mt")
      end

      assert_raise MuonTrap.Error, ~r/muontrap: .*no_such_group_mt/, fn ->
        MuonTrap.cmd("true", [], uid: 65534, gid: "no_such_group_mt")
      end
    end
  end

  describe "containment without cgroups" do
    test "the command and its children die when the caller dies" do
      m = marker()
      parent = self()

      caller =
        spawn(fn ->
          MuonTrap.cmd("sh", ["-c", "#{helper()} fork_many 5 #{m} & exec #{helper()} sleep #{m}"],
            into: %Collect{to: parent}
          )
        end)

      wait_until(fn -> length(pids_matching(m)) == 7 end, 15_000, "7 processes")
      pids = pids_matching(m)
      Process.exit(caller, :kill)
      wait_all_dead(pids)
    end

    test "children left by a command that exits are killed" do
      {out, 0} = MuonTrap.cmd(helper(), ["fork_many", "3", "exit"])
      pids = out |> String.split() |> Enum.map(&String.to_integer/1)
      assert length(pids) == 3
      wait_all_dead(pids)
    end

    test "many concurrent commands neither interfere nor kill their callers" do
      results =
        1..200
        |> Task.async_stream(fn i -> MuonTrap.cmd("echo", ["#{i}"]) end, max_concurrency: 50)
        |> Enum.map(fn {:ok, r} -> r end)

      assert results == Enum.map(1..200, &{"#{&1}\n", 0})
    end
  end
end
