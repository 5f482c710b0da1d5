defmodule MuonTrap.Owner do
  @moduledoc false
  # The `:owner` of a command: a process, on any node, whose death (or its
  # node going down) terminates the command, as the caller's own death
  # does.
  #
  # The NIF's enif_monitor_process watches the caller, a local process.
  # Any other owner is watched by the command's MuonTrap.PortReaper, a
  # local process that monitors it (a monitor of a remote pid says
  # :noconnection when its node goes down or is cut off) and asks the
  # supervisor to terminate the command: nothing waits for the caller's
  # receive loop. The caller learns of it through a flag the two share
  # (`settle/1`), so it raises MuonTrap.Error when its command ends, and
  # neither side leaves a message behind.
  #
  # An owner that is the caller adds nothing: no monitor, no message.

  @erpc_call {:erpc, :execute_call, 4}

  # How long a daemon's start waits to hear whether a remote owner lives.
  @alive_timeout 5_000

  # The flag's values.
  @up 0
  @down 1
  @settled 2

  @typedoc "An owner to watch, its command's channel, and the flag shared with its watcher."
  @type t :: %{pid: pid(), res: reference(), flag: :atomics.atomics_ref()}

  @doc """
  The owner of a command that `cmd/3` or `stream!/3` starts in the calling
  process: the validated `:owner` (`nil` opts out), else the default
  one (`default/0`). The caller itself is `nil`: it is watched already.
  """
  @spec for_caller(map()) :: pid() | nil
  def for_caller(%{owner: owner}) when owner == self(), do: nil
  def for_caller(%{owner: owner}), do: owner
  def for_caller(_options), do: default()

  @doc """
  The default owner: the group leader of a process that `:erpc.call/4`
  or `:rpc.call/4` runs for another node, or `nil`. The node check comes
  first: on one node it is the only cost (a BIF and a compare).
  """
  @spec default() :: pid() | nil
  def default do
    leader = Process.group_leader()

    if node(leader) != node() and
         Process.info(self(), :initial_call) == {:initial_call, @erpc_call},
       do: leader
  end

  @doc "Watch `pid` for the command of channel `res`."
  @spec new(pid(), reference()) :: t()
  def new(pid, res), do: %{pid: pid, res: res, flag: :atomics.new(1, signed: false)}

  @doc """
  In the watcher, at the owner's `:DOWN`: `true` if `caller` is not done
  with the command yet, after telling it `reason`; the watcher then
  terminates the command. `false` once the caller is done: nothing to do.
  """
  @spec down(t(), pid(), term()) :: boolean()
  def down(%{flag: flag, res: res}, caller, reason) do
    # Raised before the message is sent: a caller that sees the flag
    # waits for the message, which is then on its way.
    case :atomics.compare_exchange(flag, 1, @up, @down) do
      :ok ->
        send(caller, {:muontrap_owner_down, res, reason})
        true

      _settled ->
        false
    end
  end

  @doc """
  In the caller, once it is done with the command (it ended, or the
  caller lets go of it): `:up`, or `{:down, reason}` if the owner went
  down first. The watcher then leaves the caller alone. Call it once per
  command.
  """
  @spec settle(t() | nil) :: :up | {:down, term()}
  def settle(nil), do: :up

  def settle(%{flag: flag, res: res}) do
    case :atomics.compare_exchange(flag, 1, @up, @settled) do
      :ok ->
        :up

      @settled ->
        :up

      @down ->
        :atomics.put(flag, 1, @settled)

        # The watcher sends it right after raising the flag; only one
        # killed in between would not.
        receive do
          {:muontrap_owner_down, ^res, reason} -> {:down, reason}
        after
          @alive_timeout -> {:down, :unknown}
        end
    end
  end

  @doc "What `cmd/3` and `stream!/3` raise (`MuonTrap.Error`) when the owner went down."
  @spec message(pid(), term()) :: String.t()
  def message(owner, reason) do
    "muontrap: the command's owner #{inspect(owner)} on #{node(owner)} went down " <>
      "(#{inspect(reason)}); the command was terminated"
  end

  @doc """
  Whether `pid` is alive, on any node (a daemon's start). An owner on a
  node that cannot be reached is not.
  """
  @spec alive?(pid()) :: boolean()
  def alive?(pid) when node(pid) == node(), do: Process.alive?(pid)

  def alive?(pid) do
    :erpc.call(node(pid), :erlang, :is_process_alive, [pid], @alive_timeout)
  catch
    _kind, _reason -> false
  end
end
