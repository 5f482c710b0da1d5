defmodule MuonTrap.OwnerTest do
  # `:owner` on one node: validation, a local owner that is not the
  # caller (watched like a remote one), and the default owner, which only
  # an `:erpc` call from another node has (MuonTrap.OwnerClusterTest).
  use ExUnit.Case, async: true

  import MuonTrap.Test.{Faults, OSProcess}

  alias MuonTrap.Owner

  defp sleeper(m), do: {helper(), ["sleep", m]}

  defp owner_process, do: spawn(fn -> Process.sleep(:infinity) end)

  describe "validation" do
    test "a pid or nil is accepted, anything else raises ArgumentError" do
      for context <- [:cmd, :stream, :daemon], value <- [self(), nil] do
        assert %{owner: ^value} = MuonTrap.Options.validate(context, "true", [], owner: value)
      end

      for value <- [:me, "pid", {:global, :x}, 1, make_ref()] do
        assert_raise ArgumentError,
                     "invalid option :owner with value #{inspect(value)}, expected a pid (on any node) or nil",
                     fn -> MuonTrap.cmd("true", [], owner: value) end

        assert_raise ArgumentError, ~r/invalid option :owner/, fn ->
          MuonTrap.stream!("true", [], owner: value)
        end

        assert_raise ArgumentError, ~r/invalid option :owner/, fn ->
          MuonTrap.Daemon.start_link("true", [], owner: value)
        end
      end
    end

    test "owner: self() and owner: nil run as without it" do
      assert MuonTrap.cmd("echo", ["hi"], owner: self()) == {"hi\n", 0}
      assert MuonTrap.cmd("echo", ["hi"], owner: nil) == {"hi\n", 0}
      assert Enum.to_list(MuonTrap.stream!("echo", ["hi"], owner: self())) == ["hi\n"]
    end
  end

  describe "the default owner" do
    test "a local caller has none, and the caller as owner is no owner to watch" do
      assert Owner.default() == nil
      assert Owner.for_caller(%{}) == nil
      assert Owner.for_caller(%{owner: self()}) == nil
      assert Owner.for_caller(%{owner: nil}) == nil
      pid = owner_process()
      assert Owner.for_caller(%{owner: pid}) == pid
    end

    test "a process whose group leader is remote but that is no :erpc call has none" do
      # A remote group leader alone (a remote shell's, a spawned process's)
      # is not enough; the local :erpc call has a local one.
      assert :erpc.call(node(), Owner, :default, []) == nil
    end
  end

  describe "a local owner that is not the caller" do
    test "its death terminates cmd/3's command, which raises naming it" do
      m = fault_marker()
      owner = owner_process()
      {command, args} = sleeper(m)
      task = Task.async(fn -> catch_error(MuonTrap.cmd(command, args, owner: owner)) end)
      wait_until(fn -> pids_matching(m) != [] end, 15_000, "the command to run")

      Process.exit(owner, :kill)
      assert %MuonTrap.Error{message: message} = Task.await(task, 15_000)
      assert message =~ inspect(owner)
      assert message =~ ":killed"
      assert_nothing_left(m)
      assert Process.info(task.pid) == nil
    end

    test "a stream's consumer that stopped pulling has its command terminated" do
      m = fault_marker()
      owner = owner_process()
      parent = self()

      consumer =
        spawn(fn ->
          MuonTrap.stream!("yes", [m], owner: owner)
          |> Stream.each(fn _ ->
            send(parent, :pulled)
            Process.sleep(:infinity)
          end)
          |> Stream.run()
        end)

      assert_receive :pulled
      Process.exit(owner, :kill)
      assert_nothing_left(m)
      assert Process.alive?(consumer)
      Process.exit(consumer, :kill)
    end

    test "a stream's consumer that pulls raises MuonTrap.Error" do
      m = fault_marker()
      owner = owner_process()
      parent = self()

      stream =
        MuonTrap.stream!("sh", ["-c", "echo #{m}; exec #{helper()} sleep #{m}"],
          owner: owner,
          lines: 64
        )
        |> Stream.each(fn _ -> send(parent, :pulled) end)

      task = Task.async(fn -> catch_error(Stream.run(stream)) end)
      assert_receive :pulled
      Process.exit(owner, :kill)
      assert %MuonTrap.Error{message: message} = Task.await(task, 15_000)
      assert message =~ inspect(owner)
      assert_nothing_left(m)
    end

    test "a command that ends first leaves no message behind" do
      owner = owner_process()
      assert MuonTrap.cmd("echo", ["hi"], owner: owner) == {"hi\n", 0}
      assert Enum.take(MuonTrap.stream!("yes", [], owner: owner), 1) != []
      Process.exit(owner, :kill)
      refute_receive _, 200
    end
  end

  describe "a daemon with a local owner" do
    test "stops with {:shutdown, {:owner_down, reason}} and its command" do
      Process.flag(:trap_exit, true)
      m = fault_marker()
      owner = owner_process()
      {command, args} = sleeper(m)
      {:ok, daemon} = MuonTrap.Daemon.start_link(command, args, owner: owner)
      wait_until(fn -> pids_matching(m) != [] end, 15_000, "the daemon's command to run")

      Process.exit(owner, :kill)
      assert_receive {:EXIT, ^daemon, {:shutdown, {:owner_down, :killed}}}
      assert_nothing_left(m)
    end

    test "an owner already dead: {:error, :owner_down}, nothing started" do
      m = fault_marker()
      owner = owner_process()
      Process.exit(owner, :kill)
      {command, args} = sleeper(m)
      assert MuonTrap.Daemon.start_link(command, args, owner: owner) == {:error, :owner_down}
      assert pids_matching(m) == []
    end
  end
end
