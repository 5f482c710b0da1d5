defmodule MuonTrap.PortReaper do
  @moduledoc false
  # Makes sure a command finishes once its caller lets go of it early (a
  # `:timeout`, a halted stream) or dies, even when its supervisor is
  # stopped (SIGSTOP) or killed on the way.
  #
  # A caller that closes its channel makes the supervisor terminate the
  # command's tree, remove its cgroup and exit; but nobody would then see
  # a stopped supervisor leave the command running for ever, or one killed
  # half-way leave its process group or cgroup. So each cmd/3 has a reaper,
  # named heir of the command (`adopt/2`): when the caller lets go before
  # EXIT (`release/2`) or dies, the NIF gives it the command (the channel
  # is shut down for writing, which makes the supervisor stop it) and the
  # reaper reads how it ends:
  #
  #   * EXIT: the supervisor did its job; the channel is closed.
  #   * the channel's end without EXIT: the supervisor died; the reaper
  #     kills what is left of the command's process group and cgroup.
  #   * neither within `:delay_to_sigkill` and a grace: the supervisor is
  #     stuck; the reaper SIGKILLs it, then cleans up the same way.
  #
  # It also holds the `:timeout` when the caller cannot: a caller that
  # never comes back for the output (a stream consumer that stops pulling,
  # a collector that blocks) has its command terminated at the deadline
  # plus a grace, while the caller still gets `:timeout` when it returns.
  #
  # And it watches the command's `:owner` (MuonTrap.Owner) when that is
  # not the caller: a process on another node, say. When the owner goes
  # down, the reaper asks the supervisor to terminate the command, as at
  # the deadline, and flags it for the caller, which raises once the
  # command ended. (A stuck supervisor is seen to once the caller lets go
  # or dies, as above: only the channel's reader knows whether EXIT came,
  # so a kill from here could hit a recycled process group.)
  #
  # A command with nothing of its own to watch or know (no `:timeout`, no
  # other `:owner`, no cgroup, the default `:delay_to_sigkill`) has the
  # shared reaper as heir instead: one process per BEAM that hands each
  # command it is given to a short-lived process, which reads how it ends
  # as above. Most cmd/3 calls then start no process besides the command.

  require Logger

  alias MuonTrap.{Nif, Owner, Protocol, Stdio}

  # Beyond :delay_to_sigkill, how long a supervisor asked to terminate
  # has to report EXIT before it is taken for stuck (stop_timeout/1).
  @kill_grace 2_000

  # How long after a SIGKILL the channel's end may take to come.
  @kill_wait 5_000

  # Beyond the :timeout, how long the caller has to act on its deadline
  # before the reaper terminates the command for it.
  @caller_grace 1_000

  # What a reaper must watch or know of its command, beyond what every
  # command's defaults say: a command with none of these, no `:timeout`
  # and no other `:owner` is watched by the shared reaper (below) instead
  # of a process of its own, whose start, monitor and exit cost about
  # 12 µs of BEAM CPU per cmd/3 (docs/performance.md, round 16).
  @own_reaper_options [:cgroup_path, :delay_to_sigkill]

  @typedoc "A command's reaper: a process of its own, or the shared one."
  @type t :: pid() | {:shared, pid()}

  @doc """
  Name a reaper heir of `stdio`'s command, just started by the calling
  process for validated `options`, watching `owner` if not `nil`.
  Returns the reaper.
  """
  @spec adopt(Stdio.t(), map(), Owner.t() | nil) :: t()
  def adopt(%Stdio{resource: res}, options, owner \\ nil) do
    if owner == nil and Map.get(options, :timeout, :infinity) == :infinity and
         not Enum.any?(@own_reaper_options, &is_map_key(options, &1)) do
      heir = shared()
      :ok = Nif.stdio_heir(res, heir)
      {:shared, heir}
    else
      caller = self()
      # Only what it needs: an :input's iodata would be copied to its heap.
      options = Map.take(options, [:timeout, :beneath_own_cgroup | @own_reaper_options])
      reaper = spawn(fn -> init(caller, res, options, owner) end)
      :ok = Nif.stdio_heir(res, reaper)
      reaper
    end
  end

  @doc "The caller got EXIT: the reaper just goes. Returns at once."
  @spec done(t() | nil) :: :ok
  def done(nil), do: :ok
  def done({:shared, _heir}), do: :ok

  def done(reaper) do
    send(reaper, :done)
    :ok
  end

  @doc """
  The caller lets go of the command before its EXIT: the reaper makes it
  finish, as above, on its own. Returns at once.
  """
  @spec release(t(), Stdio.t()) :: :ok
  def release({:shared, heir}, stdio), do: release(heir, stdio)
  def release(reaper, %Stdio{resource: res}), do: Nif.stdio_give(res, reaper)

  @doc """
  How long a supervisor asked to terminate the command's tree may take
  to report EXIT: `:delay_to_sigkill` and a grace. One that has not by
  then is stuck (SIGSTOPped, say) and is SIGKILLed (`kill/2`), here for
  a released command and in `MuonTrap.Engine.terminate/3` for a daemon's.
  """
  @spec stop_timeout(map()) :: non_neg_integer()
  def stop_timeout(options), do: MuonTrap.PortBinary.delay_to_sigkill(options) + @kill_grace

  @doc """
  For an owner that waited long enough for EXIT (a daemon's stop):
  SIGKILL the supervisor, wait for its channel to end, and kill what is
  left of the command's process group and the cgroup of `options`.
  """
  @spec kill(Stdio.t() | reference(), map()) :: :ok
  def kill(%Stdio{resource: res}, options), do: kill(res, options)

  def kill(res, options) do
    _ = Nif.stdio_kill(res, :supervisor)
    ref = make_ref()
    _ = await_end(res, ref, System.monotonic_time(:millisecond) + @kill_wait)
    cleanup(res, options)
  end

  defp cleanup(res, options) do
    _ = Nif.stdio_kill(res, :group)
    _ = MuonTrap.Cgroup.cleanup(options)
    Nif.stdio_close(res)
    :ok
  end

  ## The shared reaper

  # One registered process, started on first use (cmd/3 works without the
  # application), as the end notices' dispatcher is. It only hands each
  # command it is given to a process of its own, which sees it end with
  # the defaults' grace: nothing of a command is kept here. One that is
  # gone (killed) is started again at the next command; a caller that died
  # meanwhile had its command shut down by the NIF, which terminates it,
  # but a stuck supervisor of such a command is not seen to (logged).
  defp shared do
    case Process.whereis(MuonTrap.PortReaper) do
      nil -> start_shared()
      pid -> pid
    end
  end

  defp start_shared do
    # It waits for its registration, so that a start that lost the race
    # (and is killed) does nothing.
    pid = spawn(fn -> receive(do: (:registered -> shared_init())) end)

    try do
      Process.register(pid, MuonTrap.PortReaper)
      send(pid, :registered)
      pid
    rescue
      # Another caller's start won.
      ArgumentError ->
        Process.exit(pid, :kill)
        shared()
    end
  end

  defp shared_init do
    if :persistent_term.get({__MODULE__, :started}, false) do
      Logger.warning(
        "muontrap: the shared reaper was started again: a command whose caller " <>
          "died while there was none was terminated, but not watched until it ended"
      )
    else
      :persistent_term.put({__MODULE__, :started}, true)
    end

    shared_loop()
  end

  defp shared_loop do
    receive do
      {:muontrap_heir, res} ->
        finisher =
          spawn(fn ->
            receive do
              {:muontrap_heir, ^res} -> finish(res, %{})
            after
              @kill_wait -> :ok
            end
          end)

        _ = Nif.stdio_give(res, finisher)

      _other ->
        :ok
    end

    shared_loop()
  end

  ## A reaper of the command's own

  defp init(caller, res, options, owner) do
    monitor = Process.monitor(caller)
    # Monitored after the caller: a remote owner's monitor may take a
    # round trip to say :noproc or :noconnection.
    owner_monitor = if owner, do: Process.monitor(owner.pid)

    _ =
      case Map.get(options, :timeout, :infinity) do
        :infinity -> nil
        ms -> Process.send_after(self(), :deadline, ms + @caller_grace)
      end

    wait(%{
      caller: monitor,
      caller_pid: caller,
      res: res,
      options: options,
      owner: owner,
      owner_monitor: owner_monitor
    })
  end

  # Until the caller is done, lets go or dies.
  defp wait(s) do
    receive do
      :done ->
        :ok

      {:muontrap_heir, res} ->
        finish(res, s.options)

      {:DOWN, ref, :process, _, _} when ref == s.caller ->
        # The NIF gives the command at the caller's death: its message is
        # on its way, unless the caller was done.
        receive do
          {:muontrap_heir, res} -> finish(res, s.options)
        after
          @kill_wait -> :ok
        end

      :deadline ->
        _ = Stdio.send_frame(s.res, Protocol.terminate())
        wait(s)

      {:DOWN, ref, :process, _, reason} when ref == s.owner_monitor ->
        owner_down(s, reason)
    end
  end

  # The caller may still be reading, or not at all (a stream's consumer
  # that stopped pulling): the command is terminated from here.
  defp owner_down(s, reason) do
    _ =
      if Owner.down(s.owner, s.caller_pid, reason),
        do: Stdio.send_frame(s.res, Protocol.terminate())

    wait(%{s | owner_monitor: nil})
  end

  # The command is ours and its channel shut down for writing: see how
  # it ends, with the grace of a daemon's stop (MuonTrap.Engine's
  # terminate/3).
  defp finish(res, options) do
    timeout = stop_timeout(options)

    case await_end(res, make_ref(), System.monotonic_time(:millisecond) + timeout) do
      :exit ->
        Nif.stdio_close(res)

      :died ->
        cleanup(res, options)

      :timeout ->
        Logger.warning(
          "muontrap: the command's supervisor did not finish within #{timeout} ms " <>
            "after its caller let go (stopped?); killing it and cleaning up"
        )

        kill(res, options)
    end
  end

  # :exit (EXIT came, now or before), :died (the channel ended without
  # it) or :timeout.
  defp await_end(res, ref, deadline) do
    case Nif.stdio_recv(res, ref) do
      {frames, state} ->
        cond do
          Nif.stdio_info(res).exited -> :exit
          state == :eof -> :died
          true -> await_more(res, ref, deadline, frames)
        end
    end
  end

  defp await_more(res, ref, deadline, _frames) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    # Any ref: the select its giver had armed was pointed here (the NIF's
    # stdio_give), and a pending select keeps the ref it was armed with.
    receive do
      {:select, ^res, _ref, _} -> await_end(res, ref, deadline)
    after
      left -> :timeout
    end
  end
end
