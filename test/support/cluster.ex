defmodule MuonTrap.Test.Cluster do
  @moduledoc false
  # Nodes on this machine for the multi-node tests: the test BEAM made
  # distributed (epmd started here), and `:peer` nodes with this build's
  # code path. A peer is controlled over its stdio, not the distribution,
  # so that a netsplit (`:erlang.disconnect_node/1`) leaves it running.
  #
  # The functions below the peers run on a peer (or on the test node for
  # a peer's call): they are in this build's ebin, on every node's path.

  import MuonTrap.Test.OSProcess, only: [wait_until: 3]

  @doc "Make this BEAM a distributed node (starting epmd) if it is not one."
  def ensure_distributed! do
    unless Node.alive?() do
      {_, 0} = System.cmd("epmd", ["-daemon"])
      name = :"muontrap_test_#{System.pid()}@127.0.0.1"
      {:ok, _} = Node.start(name, :longnames)
    end

    :ok
  end

  @doc "Start a peer node running this build: `{peer, node, os_pid}`."
  def start_peer! do
    ensure_distributed!()
    name = :"muontrap_peer_#{System.unique_integer([:positive])}_#{System.pid()}"
    paths = :code.get_path() |> Enum.map(&to_charlist/1)

    {:ok, peer, node} =
      :peer.start(%{
        name: name,
        host: ~c"127.0.0.1",
        longnames: true,
        connection: :standard_io,
        args: [~c"-setcookie", Atom.to_charlist(Node.get_cookie()), ~c"-pa" | paths]
      })

    {:ok, _} = :peer.call(peer, :application, :ensure_all_started, [:elixir])
    true = :peer.call(peer, :net_kernel, :connect_node, [node()])
    os_pid = :peer.call(peer, :os, :getpid, []) |> List.to_integer()
    {peer, node, os_pid}
  end

  @doc "Stop a peer that may be dead already."
  def stop_peer(peer) do
    :peer.stop(peer)
  catch
    _, _ -> :ok
  end

  @doc "SIGKILL a peer's OS process and wait until this node has seen it go."
  def kill_peer!(node, os_pid) do
    {_, 0} = System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    wait_until(fn -> node not in Node.list() end, 15_000, "#{node} to go down")
  end

  @doc """
  On `peer_node`, a caller as a program on that node would be: a process
  whose group leader is that node's own (`:user`), which calls `mod.fun(args)`
  on `target` with `:erpc.call/5` and sends `{:result, result}` (or
  `{:raised, kind, reason}`) to `reply_to`. Returns the caller's pid.
  """
  def remote_caller(peer_node, target, {mod, fun, args}, reply_to) do
    Node.spawn(peer_node, __MODULE__, :call_from_here, [target, {mod, fun, args}, reply_to])
  end

  @doc false
  def call_from_here(target, {mod, fun, args}, reply_to) do
    Process.group_leader(self(), Process.whereis(:user))
    send(reply_to, {:caller, self()})

    try do
      send(reply_to, {:result, :erpc.call(target, mod, fun, args, :infinity)})
    catch
      kind, reason -> send(reply_to, {:raised, kind, reason})
    end
  end

  ## Run on the command's node, by a peer's caller.

  @doc """
  `MuonTrap.cmd/3` after telling `reply_to` which process runs it and
  what its default owner is.
  """
  def cmd(command, args, opts, reply_to) do
    send(reply_to, {:running, self(), MuonTrap.Owner.default()})
    MuonTrap.cmd(command, args, opts)
  end

  @doc "The first `n` elements of a stream of the command."
  def take(command, args, opts, n), do: MuonTrap.stream!(command, args, opts) |> Enum.take(n)

  @doc """
  A consumer that takes the stream's first element and then stops
  pulling for ever.
  """
  def stall(command, args, opts, reply_to) do
    MuonTrap.stream!(command, args, opts)
    |> Stream.each(fn _ ->
      send(reply_to, {:stalled, self()})
      Process.sleep(:infinity)
    end)
    |> Stream.run()
  end

  @doc """
  Commands that keep today's behaviour (no default owner): one in a
  process spawned by the call, one in a task under a local supervisor,
  one in a daemon under a local supervisor. Returns their processes.
  """
  def start_unowned(command, args, tasks, daemons) do
    spawned = spawn(fn -> MuonTrap.cmd(command, args) end)
    {:ok, task} = Task.Supervisor.start_child(tasks, fn -> MuonTrap.cmd(command, args) end)
    # Not linked to the call's process: that one exits with its reply.
    spec = %{MuonTrap.Daemon.child_spec([command, args]) | restart: :temporary}
    {:ok, daemon} = DynamicSupervisor.start_child(daemons, spec)
    [spawned, task, daemon]
  end

  @doc """
  On `peer_node`, as a remote shell does (`iex --remsh`): a process whose
  group leader is that node's spawns `mod.fun(args)` on `target`, where
  it runs with that group leader but is no `:erpc` call.
  """
  def remote_spawn(peer_node, target, {mod, fun, args}) do
    Node.spawn(peer_node, __MODULE__, :spawn_from_here, [target, {mod, fun, args}])
  end

  @doc false
  def spawn_from_here(target, {mod, fun, args}) do
    Process.group_leader(self(), Process.whereis(:user))
    Node.spawn(target, mod, fun, args)
  end
end
