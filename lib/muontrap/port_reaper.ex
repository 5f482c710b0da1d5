defmodule MuonTrap.PortReaper do
  @moduledoc false
  # Makes sure a command's port binary finishes once its caller lets go of
  # it early (a `:timeout`, a halted stream) or dies, even when the port
  # binary itself is stopped (SIGSTOP) or killed on the way.
  #
  # Closing a port makes the port binary terminate the command's tree,
  # remove its cgroup and exit, but once a port is closed the BEAM reports
  # nothing more about it: a stopped port binary would leave the command
  # running for ever, and one killed half-way would leave its cgroup. So the
  # reaper owns the port from the start (`adopt/2`) and forwards its
  # messages to the caller unchanged. When the caller releases the port
  # before EXIT (`release/2`), or dies, the reaper sends TERMINATE and keeps
  # the port open to see how it ends:
  #
  #   * EXIT: the port binary did its job; the port is closed.
  #   * the port's exit status without EXIT: the port binary died; the
  #     reaper kills what is left in the cgroup and removes it through the
  #     NIF (`MuonTrap.Cgroup.cleanup/1`).
  #   * neither within `:delay_to_sigkill` and a grace: the port binary is
  #     stuck; the reaper SIGKILLs it, then cleans up the same way. Without
  #     a cgroup the command dies with it (`PR_SET_PDEATHSIG`), though not
  #     its own descendants.
  #
  # It also holds the `:timeout` when the caller cannot: a caller that
  # never comes back for the output (a stream consumer that stops pulling,
  # a collector that blocks) has its command terminated at the deadline
  # plus a grace, while the caller still gets `:timeout` when it returns.

  require Logger

  alias MuonTrap.Protocol

  # Beyond :delay_to_sigkill, how long a port binary asked to terminate
  # has to report EXIT before it is taken for stuck (stop_timeout/1).
  @kill_grace 2_000

  # How long after a SIGKILL the port's exit status may take to arrive.
  @kill_wait 5_000

  # Beyond the :timeout, how long the caller has to act on its deadline
  # before the reaper terminates the command for it.
  @caller_grace 1_000

  @doc """
  Take over `port`, just opened by the calling process for validated
  `options`: its messages keep coming to the caller, as `{port, message}`.
  Returns the reaper, or `nil` if the port has already closed.
  """
  @spec adopt(port(), map()) :: pid() | nil
  def adopt(port, options) do
    caller = self()
    # Only what it needs: an :input's iodata would be copied to its heap.
    options = Map.take(options, [:cgroup_path, :beneath_own_cgroup, :delay_to_sigkill, :timeout])
    reaper = spawn_link(fn -> init(caller, port, options) end)

    try do
      Port.connect(port, reaper)
      Process.unlink(port)
      reaper
    rescue
      # Closed already: its exit status is in the caller's mailbox.
      ArgumentError ->
        Process.unlink(reaper)
        Process.exit(reaper, :kill)
        nil
    end
  end

  @doc """
  The caller got the port's EXIT, or its exit status: the reaper, which
  closed the port before passing that on, just goes. Returns at once.
  """
  @spec done(pid() | nil, port() | nil) :: :ok
  def done(nil, port), do: MuonTrap.PortBinary.close(port)

  def done(reaper, port) do
    Process.unlink(reaper)
    send(reaper, :done)
    flush(reaper, port)
  end

  @doc """
  The caller lets go of `port` before its EXIT: the reaper makes the port
  binary finish, as above, on its own. After `done/2` (or an EXIT the
  reaper saw) it only closes the port. Either way the caller gets no more
  of the port's messages. Returns at once; idempotent.
  """
  @spec release(pid() | nil, port() | nil) :: :ok
  def release(nil, port), do: MuonTrap.PortBinary.close(port)

  def release(reaper, port) do
    Process.unlink(reaper)
    ref = Process.monitor(reaper)
    send(reaper, {:release, self(), ref})

    # Whatever it forwarded before the answer is in the mailbox by then.
    receive do
      {^ref, :released} -> Process.demonitor(ref, [:flush])
      {:DOWN, ^ref, :process, _, _} -> :ok
    end

    flush(reaper, port)
  end

  defp flush(reaper, port) do
    receive do
      {^port, _} when port != nil -> flush(reaper, port)
      {:EXIT, ^port, _} when port != nil -> flush(reaper, port)
      {:EXIT, ^reaper, _} -> flush(reaper, port)
    after
      0 -> :ok
    end
  end

  @doc """
  How long a port binary asked to terminate the command's tree may take
  to report EXIT: `:delay_to_sigkill` and a grace. One that has not by
  then is stuck (SIGSTOPped, say) and is SIGKILLed (`kill/2`), here for
  a released port and in `MuonTrap.Engine.terminate/3` for a daemon's.
  """
  @spec stop_timeout(map()) :: non_neg_integer()
  def stop_timeout(options), do: MuonTrap.PortBinary.delay_to_sigkill(options) + @kill_grace

  @doc """
  For an owner that waited long enough for `port`'s EXIT (a daemon's
  stop): SIGKILL the port binary, wait for it to go, and clean up the
  cgroup of `options` through the NIF. Called by the port's owner.
  """
  @spec kill(port(), map()) :: :ok
  def kill(port, options) do
    _ = kill_os_process(port)

    # An EXIT that got out first means the port binary finished after all.
    _ = if await_death(port, @kill_wait) != :exit, do: MuonTrap.Cgroup.cleanup(options)
    close(port)
  end

  ## The reaper process

  defp init(caller, port, options) do
    Process.flag(:trap_exit, true)

    _ =
      case Map.get(options, :timeout, :infinity) do
        :infinity -> nil
        ms -> Process.send_after(self(), :deadline, ms + @caller_grace)
      end

    forward(%{caller: caller, port: port, options: options, exited: false})
  end

  # Until the caller lets go: every message of the port goes to the caller.
  defp forward(%{port: port, caller: caller} = s) do
    receive do
      {^port, message} = forwarded ->
        exited = s.exited or exit_message?(message)
        # Closed before the caller hears of the end: nothing can follow it.
        if exited, do: close(port)
        send(caller, forwarded)
        forward(%{s | exited: exited})

      {:release, from, ref} ->
        send(from, {ref, :released})
        if s.exited, do: close(port), else: finish(s)

      # The caller had the end, perhaps straight from the port before
      # adopt/2 connected it.
      :done ->
        close(port)

      {:EXIT, ^caller, _reason} ->
        if s.exited, do: close(port), else: finish(s)

      {:EXIT, ^port, _reason} ->
        # Closed (after its exit status): nothing more will come.
        forward(%{s | exited: true})

      :deadline ->
        unless s.exited, do: command(port, Protocol.terminate())
        forward(s)

      _other ->
        forward(s)
    end
  end

  defp exit_message?({:exit_status, _}), do: true
  defp exit_message?({:data, frame}), do: match?({:exit, _}, Protocol.decode(frame))
  defp exit_message?(_other), do: false

  # The caller let go before EXIT: terminate as a close would, but see
  # how it ends, with the grace of a daemon's stop (MuonTrap.Engine's
  # terminate/3). Its own wait, not the engine's: it also answers a
  # caller's repeated release/2 meanwhile.
  defp finish(%{port: port, options: options}) do
    command(port, Protocol.terminate())
    timeout = stop_timeout(options)

    case await_death(port, timeout) do
      :exit ->
        close(port)

      :died ->
        _ = MuonTrap.Cgroup.cleanup(options)
        :ok

      :timeout ->
        Logger.warning(
          "muontrap: the port binary did not finish within #{timeout} ms " <>
            "after its caller let go (stopped?); killing it and cleaning up"
        )

        kill(port, options)
    end
  end

  # :exit (EXIT came: the port binary finished), :died (the port binary
  # is gone without it) or :timeout.
  defp await_death(port, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    await_death(port, deadline, :wait)
  end

  defp await_death(port, deadline, :wait) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, frame}} ->
        result = if match?({:exit, _}, Protocol.decode(frame)), do: :exit, else: :wait
        await_death(port, deadline, result)

      {^port, {:exit_status, _}} ->
        :died

      # Closed without an exit status: a write failed (EPIPE), the port
      # binary is gone.
      {:EXIT, ^port, _reason} ->
        :died

      # A caller's stop after its release (release/2 is idempotent).
      {:release, from, ref} ->
        send(from, {ref, :released})
        await_death(port, deadline, :wait)
    after
      left -> :timeout
    end
  end

  defp await_death(_port, _deadline, result), do: result

  # Only while the port is open and its exit status has not come: its OS
  # pid is then the port binary's, or was freed an instant ago (the BEAM
  # learns of the death once the process is reaped); the executable is
  # checked too, so only a muontrap reusing the pid at once could be hit.
  defp kill_os_process(port) do
    with {:os_pid, pid} <- Port.info(port, :os_pid),
         {:ok, exe} <- File.read_link("/proc/#{pid}/exe"),
         "muontrap" <- Path.basename(exe) do
      System.cmd("kill", ["-KILL", "#{pid}"], stderr_to_stdout: true)
    end
  rescue
    # No kill(1), or no descriptor left to start it: nothing more to do.
    e -> Logger.error("muontrap: could not kill a stuck port binary: #{Exception.message(e)}")
  end

  # The port may have closed meanwhile (its exit status is on its way).
  defp command(port, data) do
    true = Port.command(port, data)
    :ok
  rescue
    ArgumentError -> :ok
  end

  defp close(port) do
    true = Port.close(port)
    :ok
  rescue
    ArgumentError -> :ok
  end
end
