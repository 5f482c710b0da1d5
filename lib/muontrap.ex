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

  alias MuonTrap.{Nif, Options, Protocol}

  # Linux errno values, the same on every architecture.
  @enoent 2
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
    * `:capture_stderr_only` - collect only stderr and discard stdout
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
    * `:timeout` - milliseconds before the command is terminated
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
  `:eacces` for a path that is not executable), as `System.cmd/3` does,
  `ArgumentError` for bad arguments or options, and `MuonTrap.Error` when
  the command cannot be started or contained (a cgroup that cannot be
  created, an unknown user).
  """
  @spec cmd(binary(), [binary()], keyword()) ::
          {Collectable.t(), non_neg_integer() | :timeout}
  def cmd(command, args, opts \\ []) when is_binary(command) do
    options = Options.validate(:cmd, command, args, opts)
    {acc, collector} = Collectable.into(Map.get(options, :into, ""))
    timer = start_timer(Map.get(options, :timeout, :infinity))
    window = Map.get(options, :stdio_window, MuonTrap.Port.default_window())
    {pipe, extra_args} = open_output_pipe(window)
    port = MuonTrap.Port.open(options, :output, extra_args)

    state = %{
      port: port,
      timer: timer,
      pipe: pipe,
      select_ref: make_ref(),
      window: window,
      readable: pipe != nil,
      writer_open: pipe != nil,
      exit: nil,
      timed_out: false,
      error: nil,
      options: options
    }

    try do
      collect(acc, collector, state)
    catch
      kind, reason ->
        collector.(acc, :halt)
        Port.close(port)
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
      close_output_pipe(pipe, state.select_ref)
    end
  end

  @doc """
  Path to the `muontrap` port binary, for running it by hand.

  Its command line is compatible with the C original's; run it with
  `--help` for the options.
  """
  @spec muontrap_path() :: String.t()
  def muontrap_path, do: MuonTrap.Port.path()

  # The command writes its output straight into a pipe the caller reads
  # (MuonTrap.Nif.output_pipe/1): no process relays it and the pipe's
  # capacity is the window. Without one (or when the port cannot open it)
  # the port relays the output in DATA frames, acknowledged as they arrive.
  # `config :muontrap, relay_output: true` forces the relay (the benchmark
  # and the tests compare both).
  defp open_output_pipe(window) do
    if Application.get_env(:muontrap, :relay_output, false),
      do: {nil, []},
      else: new_output_pipe(window)
  end

  defp new_output_pipe(window) do
    case Nif.output_pipe(window) do
      {pipe, path} when is_binary(path) -> {pipe, ["--output-path", path]}
      {:error, _reason} -> {nil, []}
    end
  end

  # How long to wait for a message before reading the pipe again: not at
  # all while it may hold data, for ever while the command runs and it is
  # empty, and @drain_grace once the command is gone (something that
  # escaped containment may still hold the pipe open).
  @drain_grace 1_000

  defp collect(acc, _collector, %{exit: {result, error}, pipe: nil}), do: {acc, result, error}

  defp collect(acc, collector, state) do
    port = state.port
    timer = state.timer
    pipe = state.pipe
    select_ref = state.select_ref

    wait =
      cond do
        state.readable -> 0
        state.exit == nil -> :infinity
        true -> @drain_grace
      end

    receive do
      {^port, {:data, frame}} ->
        state = close_writer(state)

        case Protocol.decode(frame) do
          {:data, data} ->
            # Acknowledge before collecting so the port keeps streaming while
            # we work; the window still bounds what can be in our mailbox.
            Port.command(port, Protocol.ack(byte_size(data)))
            collect(collector.(acc, {:cont, data}), collector, state)

          {:exit, status} ->
            Port.close(port)
            flush_port(port)
            result = if state.timed_out, do: :timeout, else: status
            collect(acc, collector, %{state | exit: {result, state.error}})

          {:error, message} ->
            # EXEC_ERROR, when sent, comes first and says more.
            collect(acc, collector, %{state | error: state.error || message})

          {:exec_error, errno} when errno in [@enoent, @eacces] ->
            collect(acc, collector, %{state | error: {:exec_error, errno}})

          _started_or_ready ->
            collect(acc, collector, state)
        end

      {^port, {:exit_status, status}} ->
        # The port binary died without reporting; nothing more will come.
        # Finish its job: kill what is left in its cgroup and remove it.
        MuonTrap.Cgroup.cleanup(state.options)
        error = state.error || "muontrap: port binary exited unexpectedly with status #{status}"
        result = if state.timed_out, do: :timeout, else: status
        collect(acc, collector, %{close_writer(state) | exit: {result, error}})

      {:select, ^pipe, ^select_ref, :ready_input} ->
        collect(acc, collector, %{state | readable: true})

      {:timeout, ^timer, :muontrap_timeout} ->
        Port.command(port, Protocol.terminate())
        collect(acc, collector, %{state | timed_out: true})
    after
      wait ->
        if state.readable do
          case Nif.output_read(pipe, state.window, select_ref) do
            data when is_binary(data) -> collect(collector.(acc, {:cont, data}), collector, state)
            :wait -> collect(acc, collector, %{state | readable: false})
            _eof_or_error -> collect(acc, collector, %{state | readable: false, pipe: nil})
          end
        else
          # Gone quiet for @drain_grace after the command ended.
          collect(acc, collector, %{state | pipe: nil})
        end
    end
  end

  defp close_output_pipe(nil, _select_ref), do: :ok

  defp close_output_pipe(pipe, select_ref) do
    Nif.output_close(pipe)

    receive do
      {:select, ^pipe, ^select_ref, _} -> :ok
    after
      0 -> :ok
    end
  end

  # Our copy of the pipe's write end must go for EOF to come; the port
  # binary has opened its own by the time it says anything.
  defp close_writer(%{writer_open: true} = state) do
    Nif.output_close_writer(state.pipe)
    %{state | writer_open: false}
  end

  defp close_writer(state), do: state

  # The program could not be exec'd: raise what System.cmd/3 raises. A bare
  # name was looked up in PATH by the port, where System.cmd/3 would have
  # found nothing (:enoent) also for a file without execute permission.
  defp exec_error_reason(@enoent, _command), do: :enoent

  defp exec_error_reason(@eacces, command),
    do: if(String.contains?(command, "/"), do: :eacces, else: :enoent)

  defp flush_port(port) do
    receive do
      {^port, _} -> flush_port(port)
    after
      0 -> :ok
    end
  end

  defp start_timer(:infinity), do: nil
  defp start_timer(ms), do: :erlang.start_timer(ms, self(), :muontrap_timeout)

  defp cancel_timer(nil), do: :ok

  defp cancel_timer(timer) do
    :erlang.cancel_timer(timer)

    receive do
      {:timeout, ^timer, :muontrap_timeout} -> :ok
    after
      0 -> :ok
    end
  end
end
