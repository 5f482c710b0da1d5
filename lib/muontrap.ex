defmodule MuonTrap do
  @moduledoc """
  Keep programs launched from Elixir contained and well-behaved.

  `cmd/3` is a drop-in replacement for `System.cmd/3` whose OS process, and
  everything it starts, dies when the calling Erlang process dies. On Linux
  it can run the command in a cgroup with limits, as another user, with a
  timeout, and with flow-controlled output so a chatty program cannot flood
  the caller's mailbox.

  `stream!/3` runs a command as a lazy stream of its output, with stdout
  and stderr apart if asked. Both write `:input` to the command's stdin.

  For long-running programs in a supervision tree, see `MuonTrap.Daemon`.
  """

  alias MuonTrap.{Options, Run}

  @doc ~S"""
  Run a command like `System.cmd/3`, containing it and its descendants.

  Returns `{collected_output, exit_status}`, or `{output_so_far, :timeout}`
  when `:timeout` expires (the command is terminated first). An exit status
  above 128 means the command was killed by signal `status - 128`.

  Options:

    * `:into` - a `Collectable` for the output (default `""`)
    * `:input` - written to the command's stdin while its output is read, then
      stdin is closed: a binary, iodata, or any `Enumerable` of iodata, pulled
      only as fast as the command reads (a lazy one is halted if the command
      stops reading or exits first). Without it, stdin is `/dev/null`
    * `:lines` - collect lines instead of chunks, as `System.cmd/3` does on
      Elixir 1.15+: `into: [], lines: 1024` gives the lines without their
      `"\n"`; each line is delivered whole, whatever the size given
    * `:cd` - the directory to run the command in
    * `:env` - environment variables as `{name, value}` pairs; a `nil` value unsets one
    * `:arg0` - set the command's `argv[0]`
    * `:stderr_to_stdout` - collect stderr together with stdout
    * `:capture_stderr_only` - collect only stderr and discard stdout (wins over
      `:stderr_to_stdout` when both are `true`)
    * `:parallelism` - accepted as in `System.cmd/3`, with no effect: no Erlang
      port is opened per command (a command is a fork of the resident spawner)
    * `:cgroup` - cgroup v2 settings such as `%{memory_max: 268_435_456, cpu_max: {50_000, 100_000}}`;
      see `MuonTrap.Daemon.cgroup_config/1` for every key
    * `:cgroup_base` - run the command in a new random sub-group of this cgroup
    * `:cgroup_path` - run the command in this cgroup (created, then removed at exit)
    * `:beneath_own_cgroup` - `true` to make cgroup paths relative to the BEAM's own cgroup
      in each hierarchy (for a BEAM that is not at a hierarchy's root); the `muontrap`
      binary's flag of the same name does this
    * `:delay_to_sigkill` - milliseconds between the stop signal and SIGKILL (default 500)
    * `:stop_signal` - the first signal when the command is stopped (at a timeout,
      when the caller dies or halts a stream): `:sigterm` (default), or e.g.
      `:sigint` or `:sigquit` for programs that stop cleanly only on those
    * `:umask` - the command's umask, such as `0o077`
    * `:nice` - the command's absolute nice value, -20..19 (below the current one
      needs `CAP_SYS_NICE`)
    * `:rlimits` - resource limits as a map or keyword: `nofile`, `core`, `nproc`, `as`,
      `fsize`, `memlock`, `stack`, `cpu`, `data`, ... (every `setrlimit(2)` resource,
      lower case), each an integer (soft and hard), `:infinity` or `{soft, hard}`, in the
      resource's own unit (bytes, seconds for `cpu`)
    * `:uid`, `:gid` - run as this user / group (name or number, never 0)
    * `:groups` - supplementary groups (names or numbers); `[]` drops all
    * `:timeout` - milliseconds before `{output_so_far, :timeout}` is returned; the
      command is then terminated asynchronously (SIGTERM, SIGKILL after `:delay_to_sigkill`)
    * `:stdio_window` - output bytes in flight before the command is paused (default
      262144). The command writes into a pipe of this capacity (at least one page)
      that the caller reads directly, at most this many bytes at a time
    * `:owner` - a process, on any node, that the command dies with too: when it
      dies or its node goes down (a netsplit included, once seen), the command is
      terminated (as with `:stop_signal`) and `cmd/3` raises `MuonTrap.Error`
      naming the owner. The calling process is always an owner. Default: the
      caller of an `:erpc.call/4` or `:rpc.call/4` from another node when
      `cmd/3` runs directly in that call (see "Calls from other nodes"), else
      none; `nil` for none

  Cgroup paths are relative to the root of each cgroup hierarchy (v2, or v1
  on v1 and hybrid hosts), or beneath the BEAM's own group with `:beneath_own_cgroup`.

      iex> MuonTrap.cmd("echo", ["hello"])
      {"hello\n", 0}

      iex> MuonTrap.cmd("sh", ["-c", "echo oops >&2; exit 3"], stderr_to_stdout: true)
      {"oops\n", 3}

      iex> MuonTrap.cmd("tr", ["a-z", "A-Z"], input: ["hello", " world\n"])
      {"HELLO WORLD\n", 0}

      iex> MuonTrap.cmd("printf", ["one\ntwo\nthree"], into: [], lines: 1024)
      {["one", "two", "three"], 0}

  Raises `ErlangError` with `:enoent` when the command is not found (or
  `:eacces` for a path that is not executable), as `System.cmd/3` does, and
  with `:e2big` for arguments the kernel refuses,
  `ArgumentError` for bad arguments or options, and `MuonTrap.Error` when
  the command cannot be started or contained (a cgroup that cannot be
  created, an unknown user).

  ## Timeouts

  At the deadline `cmd/3` collects what the command wrote before it (what is
  in the pipe), lets go of the port and returns `{output_so_far, :timeout}`
  at once: it neither drains output written after the deadline nor waits
  out `:delay_to_sigkill`. Containment then finishes on its own: the port
  binary sends the stop signal, SIGKILL after `:delay_to_sigkill`, reaps
  every descendant and removes the cgroup, as when the caller dies. So a
  command that ignores SIGTERM may still be alive for up to
  `:delay_to_sigkill` ms after `cmd/3` returned. A supervisor that has not
  finished `:delay_to_sigkill` + 2 s later (it was SIGSTOPped, say) is
  SIGKILLed, and the cgroup of one that died on the way is cleaned up
  through the NIF. A caller that does not come back to the command (a
  collector that blocks) still has its command terminated 1 s after the
  deadline, and gets `:timeout` when it returns.

  ## Calls from other nodes

  `:erpc.call(node, MuonTrap, :cmd, [...])` (or `:rpc.call/4`) runs
  `cmd/3` on `node` in a process that nothing links to the caller. So
  that the command still dies with its caller, `cmd/3` called directly in
  such a process (its initial call is `{:erpc, :execute_call, 4}` and its
  group leader is on the calling node) takes the caller's group leader as
  its default `:owner`: the command is terminated if the calling node
  goes down, and `cmd/3` raises `MuonTrap.Error`. Processes that the call
  spawns, tasks it starts under a supervisor, commands typed in a remote
  shell (`iex --remsh`) and daemons keep no such default: give them
  `:owner`. `owner: nil` opts out. On one node nothing changes: a local
  call adds no monitor and no message.

  With an explicit `:cgroup_path`, a second command started at once with
  the same path fails with `MuonTrap.Error` ("cgroup ... already exists")
  while the first group is still being removed; use `:cgroup_base` (a new
  random sub-group each time) for commands that time out and run again.
  """
  @spec cmd(binary(), [binary()], keyword()) ::
          {Collectable.t(), non_neg_integer() | :timeout}
  def cmd(command, args, opts \\ []) when is_binary(command) do
    options = command |> Options.validate_for_cmd(args, opts) |> Options.check_host!()
    {acc, collector} = into(Map.get(options, :into, ""))
    run = Run.start(options)

    try do
      collect(acc, collector, run)
    catch
      kind, reason ->
        # The run as it started names the same command: stopped wherever
        # collect/3 was. (collect/3 stops it itself when it ends.)
        Run.stop(run)
        collector.(acc, :halt)
        :erlang.raise(kind, reason, __STACKTRACE__)
    else
      {acc, {:error, error}} ->
        collector.(acc, :halt)
        MuonTrap.Error.raise!(error, [command, args, opts])

      {acc, status} ->
        {collector.(acc, :done), status}
    end
  end

  defp collect(acc, collector, run) do
    case Run.next(run) do
      {:data, _stream, chunks, run} ->
        acc = Run.guard(run, fn -> Enum.reduce(chunks, acc, &collector.(&2, {:cont, &1})) end)
        collect(acc, collector, run)

      {:exit, status, run} ->
        Run.stop(run)
        {acc, status}

      # No stream left when the command closed its stdout before the deadline.
      {:timeout, queued, run} ->
        Run.stop(run)
        chunks = Enum.flat_map(queued, fn {_stream, chunks} -> chunks end)
        {Enum.reduce(chunks, acc, &collector.(&2, {:cont, &1})), :timeout}

      {:error, error, run} ->
        Run.stop(run)
        {acc, {:error, error}}
    end
  end

  @doc ~S"""
  Run a command as a lazy `Enumerable` of its output, contained like
  `cmd/3`'s.

  The command starts when the stream is enumerated and emits its output as
  binaries (lines with `:lines`). It takes every `cmd/3` option except
  `:into`, plus:

    * `:stderr` - `:separate` to capture stderr on a pipe of its own: the
      elements are then `{:stdout, binary}` and `{:stderr, binary}`, each
      stream in order. Cannot be combined with `:stderr_to_stdout` or
      `:capture_stderr_only`. Without it, stderr is handled as by `cmd/3`

  Only what the consumer asks for is read, so a slow consumer pauses the
  command (its pipe fills) and the mailbox stays empty. Halting early
  (`Enum.take/2`, `Stream.take_while/2`, an exception in the consumer, the
  consumer being killed) terminates the command and every descendant.
  After the last output, a non-zero exit raises `MuonTrap.ExitError` with
  its `:status`; a `:timeout` raises it with `status: :timeout`, after what
  was written before the deadline.

  `:owner` works as in `cmd/3`: the command is terminated when the owner
  dies or its node goes down, whether or not the consumer is pulling,
  and the next pull raises `MuonTrap.Error`. The default owner (an
  `:erpc.call/4` or `:rpc.call/4` caller's) is judged in the process
  that enumerates the stream, when the command starts.

      iex> MuonTrap.stream!("printf", ["a\nb\n"], lines: 1024) |> Enum.to_list()
      ["a", "b"]

      iex> MuonTrap.stream!("sh", ["-c", "echo out; echo err >&2"], stderr: :separate)
      ...> |> Enum.sort()
      [{:stderr, "err\n"}, {:stdout, "out\n"}]

      iex> MuonTrap.stream!("yes", []) |> Enum.take(1) |> hd() |> binary_part(0, 2)
      "y\n"

  Raises like `cmd/3` for a command that cannot be found or run; bad
  options raise `ArgumentError` when `stream!/3` is called.
  """
  @spec stream!(binary(), [binary()], keyword()) :: Enumerable.t()
  def stream!(command, args, opts \\ []) when is_binary(command) do
    options = Options.validate(:stream, command, args, opts)
    call = {command, args, opts}

    Stream.resource(
      fn ->
        {Run.start(Options.check_host!(options)), nil}
      end,
      &stream_next(&1, call),
      fn {run, _raise} -> Run.stop(run) end
    )
  end

  # An exit or timeout is raised on the step after the last output, with
  # the run already stopped, so the resource's cleanup sees the latest run.
  defp stream_next({_run, {:raise, exception}}, _call), do: raise(exception)

  defp stream_next({run, nil}, {command, args, opts} = call) do
    separate? = run.options[:stderr] == :separate

    case Run.next(run) do
      {:data, stream, chunks, run} ->
        {tag(chunks, stream, separate?), {run, nil}}

      {:exit, 0, run} ->
        {:halt, {run, nil}}

      {:exit, status, run} ->
        exit_error(run, [], call, status)

      {:timeout, queued, run} ->
        chunks = Enum.flat_map(queued, fn {stream, chunks} -> tag(chunks, stream, separate?) end)
        exit_error(run, chunks, call, :timeout)

      {:error, error, run} ->
        Run.stop(run)
        MuonTrap.Error.raise!(error, [command, args, opts])
    end
  end

  defp exit_error(run, chunks, {command, args, _opts}, status) do
    Run.stop(run)
    {chunks, {run, {:raise, %MuonTrap.ExitError{command: command, args: args, status: status}}}}
  end

  defp tag(chunks, _stream, false), do: chunks
  defp tag(chunks, :output, true), do: Enum.map(chunks, &{:stdout, &1})
  defp tag(chunks, :stderr, true), do: Enum.map(chunks, &{:stderr, &1})

  @doc """
  Path to the `muontrap` binary, for running it by hand (its plain command
  line, as MuonTrap 2.0's port binary).

  Its command line is compatible with the C original's; run it with
  `--help` for the options.
  """
  @spec muontrap_path() :: String.t()
  def muontrap_path, do: MuonTrap.PortBinary.path()

  # A binary is appended to as chunks arrive (the runtime grows it in
  # place) instead of collecting iodata and copying it all at the end, as
  # Collectable's binary implementation does: a timeout then returns at
  # once, not after copying everything that arrived before it.
  defp into(binary) when is_binary(binary), do: {binary, &append/2}
  defp into(collectable), do: Collectable.into(collectable)

  defp append(acc, {:cont, data}), do: acc <> data
  defp append(acc, :done), do: acc
  defp append(_acc, :halt), do: :ok
end
