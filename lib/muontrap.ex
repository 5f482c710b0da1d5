defmodule MuonTrap do
  @moduledoc """
  Keep programs launched from Elixir contained and well-behaved.

  `cmd/3` is a drop-in replacement for `System.cmd/3` whose OS process, and
  everything it starts, dies when the calling Erlang process dies. On Linux
  it can run the command in a cgroup with limits, as another user, with a
  timeout, and with flow-controlled output so a chatty program cannot flood
  the caller's mailbox.

  For long-running programs in a supervision tree, see `MuonTrap.Daemon`.
  """

  alias MuonTrap.{Options, Protocol, Stdio}

  # Linux errno values, the same on every architecture.
  @enoent 2
  @e2big 7
  @eacces 13

  @doc ~S"""
  Run a command like `System.cmd/3`, containing it and its descendants.

  Returns `{collected_output, exit_status}`, or `{output_so_far, :timeout}`
  when `:timeout` expires (the command is terminated first). An exit status
  above 128 means the command was killed by signal `status - 128`.

  Options:

    * `:into` - a `Collectable` for the output (default `""`)
    * `:cd` - the directory to run the command in
    * `:env` - environment variables as `{name, value}` pairs; a `nil` value unsets one
    * `:arg0` - set the command's `argv[0]`
    * `:stderr_to_stdout` - collect stderr together with stdout
    * `:capture_stderr_only` - collect only stderr and discard stdout (wins over
      `:stderr_to_stdout` when both are `true`)
    * `:parallelism` - the port's `:parallelism` hint (see `Port.open/2`)
    * `:cgroup` - cgroup v2 settings such as `%{memory_max: 268_435_456, cpu_max: {50_000, 100_000}}`;
      see `MuonTrap.Daemon.cgroup_config/1` for every key
    * `:cgroup_base` - run the command in a new random sub-group of this cgroup
    * `:cgroup_path` - run the command in this cgroup (created, then removed at exit)
    * `:cgroup_beneath_beam` - `true` to make cgroup paths relative to the BEAM's own cgroup
      in each hierarchy (for a BEAM that is not at a hierarchy's root)
    * `:delay_to_sigkill` - milliseconds between SIGTERM and SIGKILL (default 500)
    * `:uid`, `:gid` - run as this user / group (name or number, never 0)
    * `:groups` - supplementary groups (names or numbers); `[]` drops all
    * `:timeout` - milliseconds before `{output_so_far, :timeout}` is returned; the
      command is then terminated asynchronously (SIGTERM, SIGKILL after `:delay_to_sigkill`)
    * `:stdio_window` - output bytes in flight before the command is paused (default 262144;
      the port binary's own default for hand-written use stays 10240). The command
      writes into a pipe of this capacity (at least one page) that the caller reads
      directly, at most this many bytes at a time

  Cgroup paths are relative to the root of each cgroup hierarchy (v2, or v1
  on v1 and hybrid hosts), or beneath the BEAM's own group with `:cgroup_beneath_beam`.

      iex> MuonTrap.cmd("echo", ["hello"])
      {"hello\n", 0}

      iex> MuonTrap.cmd("sh", ["-c", "echo oops >&2; exit 3"], stderr_to_stdout: true)
      {"oops\n", 3}

  Raises `ErlangError` with `:enoent` when the command is not found (or
  `:eacces` for a path that is not executable), as `System.cmd/3` does, and
  with `:e2big` for arguments the kernel refuses,
  `ArgumentError` for bad arguments or options, and `MuonTrap.Error` when
  the command cannot be started or contained (a cgroup that cannot be
  created, an unknown user).
  """
  @spec cmd(binary(), [binary()], keyword()) ::
          {Collectable.t(), non_neg_integer() | :timeout}
  def cmd(command, args, opts \\ []) when is_binary(command) do
    options = Options.validate_for_cmd(command, args, opts)
    Options.check_host!(options)
    {acc, collector} = into(Map.get(options, :into, ""))
    window = Map.get(options, :stdio_window, MuonTrap.Port.default_window())
    {stdio, handover_args} = Stdio.open(window)
    port = open_port(options, handover_args, stdio)
    timer = start_timer(Map.get(options, :timeout, :infinity))

    state = %{
      port: port,
      timer: timer,
      stdio: Stdio.attach(stdio, port),
      readable: true,
      started: false,
      error: nil,
      stdio_error: nil,
      options: options
    }

    try do
      collect(acc, collector, state)
    catch
      kind, reason ->
        collector.(acc, :halt)
        :erlang.raise(kind, reason, __STACKTRACE__)
    else
      {acc, result, error} ->
        case error do
          nil ->
            {collector.(acc, :done), result}

          {:exec_error, errno} ->
            collector.(acc, :halt)
            :erlang.error(exec_error_reason(errno, command), [command, args, opts])

          message ->
            collector.(acc, :halt)
            raise MuonTrap.Error, message: message
        end
    after
      cancel_timer(timer)
      close_port(port)
      Stdio.close(stdio)
    end
  end

  @doc """
  Path to the `muontrap` port binary, for running it by hand.

  Its command line is compatible with the C original's; run it with
  `--help` for the options.
  """
  @spec muontrap_path() :: String.t()
  def muontrap_path, do: MuonTrap.Port.path()

  # A binary is appended to as chunks arrive (the runtime grows it in
  # place) instead of collecting iodata and copying it all at the end, as
  # Collectable's binary implementation does: a timeout then returns at
  # once, not after copying everything that arrived before it.
  defp into(binary) when is_binary(binary), do: {binary, &append/2}
  defp into(collectable), do: Collectable.into(collectable)

  defp append(acc, {:cont, data}), do: acc <> data
  defp append(acc, :done), do: acc
  defp append(_acc, :halt), do: :ok

  defp open_port(options, handover_args, stdio) do
    MuonTrap.Port.open(options, :output, handover_args)
  rescue
    e ->
      Stdio.close(stdio)
      reraise e, __STACKTRACE__
  end

  defp collect(acc, collector, state) do
    %{port: port, timer: timer, stdio: stdio} = state
    {resource, ref} = if stdio, do: {stdio.resource, stdio.ref}, else: {nil, nil}
    # Not waiting while the pipe may hold data; for ever while it is empty.
    wait = if state.readable and stdio != nil, do: 0, else: :infinity

    receive do
      {^port, {:data, frame}} ->
        case Protocol.decode(frame) do
          {:exit, status} ->
            close_port(port)
            finish(acc, collector, state, status, state.error)

          frame ->
            collect(acc, collector, handle_frame(frame, state))
        end

      {^port, {:exit_status, status}} ->
        # The port binary died without reporting; nothing more will come.
        # Finish its job: kill what is left in its cgroup and remove it.
        _ = MuonTrap.Cgroup.cleanup(state.options)
        finish(acc, collector, state, status, state.error || port_exit_error(status, state))

      {:select, ^resource, ^ref, :ready_input} ->
        collect(acc, collector, %{state | readable: true})

      {:timeout, ^timer, :muontrap_timeout} ->
        # Return now: what the command wrote before the deadline is in the
        # pipe; closing the port makes the port binary terminate and reap
        # the command and remove its cgroup on its own.
        data = if stdio, do: Stdio.read_queued(stdio), else: ""
        {collect_chunk(acc, collector, data), :timeout, nil}
    after
      wait -> read_pipe(acc, collector, state)
    end
  end

  # Every process is gone: what is left in the pipe is the end of the output.
  defp finish(acc, collector, state, status, error) do
    {acc, read_error} = Stdio.drain(state.stdio, acc, &collector.(&2, {:cont, &1}))
    {acc, status, error || state.stdio_error || read_error}
  end

  defp collect_chunk(acc, _collector, ""), do: acc
  defp collect_chunk(acc, collector, data), do: collector.(acc, {:cont, data})

  defp read_pipe(acc, collector, state) do
    case Stdio.next(state.stdio) do
      {:data, data, stdio} ->
        collect(collector.(acc, {:cont, data}), collector, %{state | stdio: stdio})

      {:wait, stdio} ->
        collect(acc, collector, %{state | stdio: stdio, readable: false})

      {:eof, _stdio} ->
        collect(acc, collector, closed(state))

      {:error, message, _stdio} ->
        collect(acc, collector, closed(%{state | stdio_error: message}))
    end
  end

  defp closed(state) do
    Stdio.close(state.stdio)
    %{state | stdio: nil, readable: false}
  end

  # Before any frame, the status is the errno of the BEAM's failed exec of
  # the port binary: E2BIG for arguments the kernel refuses, which
  # System.cmd/3 would return as exit status 7.
  defp port_exit_error(@e2big, %{started: false}), do: {:exec_error, @e2big}

  defp port_exit_error(status, _state),
    do: "muontrap: port binary exited unexpectedly with status #{status}"

  defp handle_frame({:started, _pid}, state), do: %{state | started: true}

  # EXEC_ERROR, when sent, comes first and says more.
  defp handle_frame({:error, message}, state), do: %{state | error: state.error || message}

  defp handle_frame({:exec_error, errno}, state) when errno in [@enoent, @eacces],
    do: %{state | error: {:exec_error, errno}}

  defp handle_frame(_started_or_other, state), do: state

  # The program could not be exec'd: raise what System.cmd/3 raises. A bare
  # name was looked up in PATH by the port, where System.cmd/3 would have
  # found nothing (:enoent) also for a file without execute permission.
  defp exec_error_reason(@enoent, _command), do: :enoent
  defp exec_error_reason(@e2big, _command), do: :e2big

  defp exec_error_reason(@eacces, command),
    do: if(String.contains?(command, "/"), do: :eacces, else: :enoent)

  # Unlinked first, so a caller trapping exits gets no {:EXIT, port, _}
  # (one already queued is flushed). The port still closes if the caller
  # dies in between: it is the port's owner.
  defp close_port(port) do
    Process.unlink(port)

    try do
      Port.close(port)
    rescue
      # Already closed: at EXIT, or the port binary exited.
      ArgumentError -> :ok
    end

    flush_port(port)
  end

  defp flush_port(port) do
    receive do
      {^port, _} -> flush_port(port)
      {:EXIT, ^port, _} -> flush_port(port)
    after
      0 -> :ok
    end
  end

  defp start_timer(:infinity), do: nil
  defp start_timer(ms), do: :erlang.start_timer(ms, self(), :muontrap_timeout)

  defp cancel_timer(nil), do: :ok

  defp cancel_timer(timer) do
    _ = :erlang.cancel_timer(timer)

    receive do
      {:timeout, ^timer, :muontrap_timeout} -> :ok
    after
      0 -> :ok
    end
  end
end
