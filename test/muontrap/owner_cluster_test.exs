defmodule MuonTrap.OwnerClusterTest do
  # Commands that follow their caller across nodes (`:owner`): `:peer`
  # nodes on this machine call this node (the command's node) with
  # `:erpc`, and are then SIGKILLed or cut off. `/proc` says what is left.
  use ExUnit.Case, async: false

  import MuonTrap.Test.{Cluster, Faults, OSProcess}

  @moduletag :multi_node
  @moduletag timeout: 120_000

  # The issue's bound: a command whose owner's node is gone is gone
  # within 2 s.
  @gone_within 2_000

  setup do
    {peer, node, os_pid} = start_peer!()
    on_exit(fn -> stop_peer(peer) end)
    %{peer: peer, peer_node: node, peer_os_pid: os_pid}
  end

  defp sleeper(m), do: {helper(), ["sleep", m]}

  # :erpc's process exits with its reply: {ref, :error, exception, stacktrace}
  # for one that raised.

  # The peer calls Cluster.cmd/4 here; returns the process running it
  # once the command runs.
  defp call_cmd(ctx, m, opts) do
    {command, args} = sleeper(m)

    remote_caller(
      ctx.peer_node,
      node(),
      {MuonTrap.Test.Cluster, :cmd, [command, args, opts, self()]},
      self()
    )

    assert_receive {:caller, _caller}
    assert_receive {:running, runner, default_owner}
    wait_until(fn -> pids_matching(m) != [] end, 15_000, "the command to run")
    {runner, default_owner}
  end

  defp assert_gone_soon(m) do
    wait_until(fn -> pids_matching(m) == [] end, @gone_within, "the command to be gone")
    assert_nothing_left(m)
  end

  test "an :erpc caller's node SIGKILLed: the command is gone within 2 s", ctx do
    m = fault_marker()
    {runner, default_owner} = call_cmd(ctx, m, [])
    assert node(default_owner) == ctx.peer_node
    ref = Process.monitor(runner)

    kill_peer!(ctx.peer_node, ctx.peer_os_pid)
    assert_gone_soon(m)
    # The call's process raised, naming the owner, and is gone.
    assert_receive {:DOWN, ^ref, :process, ^runner, {_, :error, %MuonTrap.Error{message: msg}, _}}
    assert msg =~ inspect(default_owner)
    assert msg =~ ":noconnection"
  end

  test "an explicit owner on another node: its node SIGKILLed, the command is gone", ctx do
    m = fault_marker()
    owner = Node.spawn(ctx.peer_node, Process, :sleep, [:infinity])
    {command, args} = sleeper(m)
    parent = self()

    # A local process, no :erpc call: only owner: ties it to the peer.
    runner =
      spawn(fn ->
        send(parent, {:result, catch_error(MuonTrap.cmd(command, args, owner: owner))})
      end)

    wait_until(fn -> pids_matching(m) != [] end, 15_000, "the command to run")
    kill_peer!(ctx.peer_node, ctx.peer_os_pid)
    assert_gone_soon(m)
    assert_receive {:result, %MuonTrap.Error{message: msg}}
    assert msg =~ inspect(owner)
    refute Process.alive?(runner)
  end

  test "owner: nil opts out: the command lives on, and the test stops it", ctx do
    m = fault_marker()
    {runner, _default} = call_cmd(ctx, m, owner: nil)
    [canary_runner, canary] = canary(ctx)

    kill_peer!(ctx.peer_node, ctx.peer_os_pid)
    # Once the canary (owned by the peer) is gone, the peer's monitors
    # have all fired.
    assert_gone_soon(canary)
    assert pids_matching(m) != []
    assert Process.alive?(runner)

    Process.exit(runner, :kill)
    assert_nothing_left(m)
    refute Process.alive?(canary_runner)
  end

  # A command owned by a process on the peer (as owner: does), whose end
  # says that the peer's monitors fired: [runner, marker].
  defp canary(ctx) do
    m = fault_marker()
    owner = Node.spawn(ctx.peer_node, Process, :sleep, [:infinity])
    {command, args} = sleeper(m)

    runner =
      spawn(fn ->
        try do
          MuonTrap.cmd(command, args, owner: owner)
        rescue
          MuonTrap.Error -> :owner_down
        end
      end)

    wait_until(fn -> pids_matching(m) != [] end, 15_000, "the canary to run")
    [runner, m]
  end

  test "a remote stream halted by its remote consumer leaves nothing", ctx do
    m = fault_marker()
    call = {MuonTrap.Test.Cluster, :take, ["yes", [m], [lines: 1024], 3]}
    remote_caller(ctx.peer_node, node(), call, self())
    assert_receive {:result, [^m, ^m, ^m]}, 15_000
    assert_nothing_left(m)
  end

  test "a remote stream whose consumer stopped pulling: its caller's node SIGKILLed", ctx do
    m = fault_marker()
    call = {MuonTrap.Test.Cluster, :stall, ["yes", [m], [], self()]}
    remote_caller(ctx.peer_node, node(), call, self())
    assert_receive {:stalled, consumer}, 15_000

    kill_peer!(ctx.peer_node, ctx.peer_os_pid)
    assert_gone_soon(m)
    # The consumer still sleeps in its callback: nothing waited for it.
    assert Process.alive?(consumer)
    Process.exit(consumer, :kill)
  end

  test "a netsplit is a node down: the command is stopped", ctx do
    m = fault_marker()
    {runner, _default} = call_cmd(ctx, m, [])
    ref = Process.monitor(runner)

    true = :erlang.disconnect_node(ctx.peer_node)
    assert_gone_soon(m)
    assert_receive {:DOWN, ^ref, :process, ^runner, {_, :error, %MuonTrap.Error{message: msg}, _}}
    assert msg =~ ":noconnection"
    # The peer itself lives on.
    assert :peer.call(ctx.peer, :erlang, :node, []) == ctx.peer_node
  end

  describe "a daemon with owner: on another node" do
    test "its node killed: the daemon stops with {:shutdown, {:owner_down, _}}, leaving nothing",
         ctx do
      Process.flag(:trap_exit, true)
      m = fault_marker()
      owner = Node.spawn(ctx.peer_node, Process, :sleep, [:infinity])
      {command, args} = sleeper(m)
      {:ok, daemon} = MuonTrap.Daemon.start_link(command, args, owner: owner)
      wait_until(fn -> pids_matching(m) != [] end, 15_000, "the daemon's command to run")

      kill_peer!(ctx.peer_node, ctx.peer_os_pid)
      assert_receive {:EXIT, ^daemon, {:shutdown, {:owner_down, :noconnection}}}
      assert_nothing_left(m)

      # Started again into the dead owner: no daemon, and why.
      assert {:error, :owner_down} = MuonTrap.Daemon.start_link(command, args, owner: owner)
      assert pids_matching(m) == []
    end
  end

  test "an :erpc call's spawned process, supervised task and daemon, and a remote shell's " <>
         "command survive the caller's node",
       ctx do
    m = fault_marker()
    {command, args} = sleeper(m)
    {:ok, tasks} = Task.Supervisor.start_link()
    {:ok, daemons} = DynamicSupervisor.start_link(strategy: :one_for_one)
    call = {MuonTrap.Test.Cluster, :start_unowned, [command, args, tasks, daemons]}
    remote_caller(ctx.peer_node, node(), call, self())
    assert_receive {:result, [spawned, task, daemon]}, 15_000
    # As `iex --remsh` runs a command: the group leader is the peer's.
    shell = remote_spawn(ctx.peer_node, node(), {MuonTrap, :cmd, [command, args]})
    [_, canary] = canary(ctx)
    wait_until(fn -> length(pids_matching(m)) == 4 end, 15_000, "the 4 commands to run")
    shell_runner = Enum.find(Process.list(), &remote_leader?(&1, ctx.peer_node, shell))

    kill_peer!(ctx.peer_node, ctx.peer_os_pid)
    assert_gone_soon(canary)
    assert length(pids_matching(m)) == 4

    :ok = DynamicSupervisor.terminate_child(daemons, daemon)
    Enum.each([spawned, task, shell_runner], &Process.exit(&1, :kill))
    assert_nothing_left(m)
  end

  # The remote shell's process here: the one running cmd/3 with the peer's group leader.
  defp remote_leader?(pid, peer_node, _spawner_pid) do
    case Process.info(pid, [:group_leader, :initial_call]) do
      [group_leader: gl, initial_call: {MuonTrap, :cmd, 2}] -> node(gl) == peer_node
      _ -> false
    end
  end
end
