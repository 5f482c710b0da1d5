defmodule MuonTrap.Run do
  @moduledoc """
  One command run from the calling process, the engine under
  `MuonTrap.cmd/3` and `MuonTrap.stream!/3`: the port binary, the pipes
  (`MuonTrap.Stdio`), the `:input` being written, the `:timeout` timer.

  `next/1` moves the command on by one step and returns the next output,
  pulling only as much as it returns, so a caller that does not ask for
  more pauses the command (its pipe fills) instead of growing a mailbox.
  Input is written between reads, never blocking, so a command that fills
  its output while it waits for input cannot deadlock the caller.

  The caller owns the pipes, a `MuonTrap.PortReaper` the port: if the
  caller dies, the port binary terminates the command's tree (the reaper
  sees to it), and the NIF closes the pipes.
  """

  alias MuonTrap.{Input, Lines, PortReaper, Protocol, Stdio}

  # How long the pipes are read after EXIT (see MuonTrap.Stdio.drain/3).
  @drain_grace 1_000

  # Writes to stdin per step before output is read and messages looked at.
  @writes_per_step 4

  # The most one write to stdin moves: a write that fills the whole pipe
  # wakes the reader only once it is done, so the two take turns instead
  # of overlapping (docs/performance.md, "`:input` and `stream!/3`").
  @max_write 65_536

  @enforce_keys [:port, :stdio, :options, :window]
  defstruct [
    :port,
    :stdio,
    :options,
    :window,
    # Owns the port for the caller, and sees it finish (MuonTrap.PortReaper).
    reaper: nil,
    timer: nil,
    # Output streams not at EOF yet, and those that may have data now.
    reading: [],
    ready: [],
    input: nil,
    pending: "",
    writable: false,
    lines: nil,
    status: nil,
    deadline: nil,
    started: false,
    error: nil
  ]

  @typedoc "A running command."
  @type t :: %__MODULE__{}

  @typedoc "Why a command could not run: an exec errno or a `muontrap:` message."
  @type error :: {:exec_error, :enoent | :eacces | :e2big} | String.t()

  @doc """
  Start the command for validated, host-checked `options`. With
  `stderr: :separate` its stderr gets a pipe of its own.
  """
  @spec start(MuonTrap.Options.t()) :: t()
  def start(options) do
    window = MuonTrap.PortBinary.window(options)
    reading = if options[:stderr] == :separate, do: [:output, :stderr], else: [:output]
    input = options[:input]
    streams = if input, do: reading ++ [:stdin], else: reading
    {stdio, handover_args} = Stdio.open(window, streams)
    port = open_port(options, handover_args, stdio)

    %__MODULE__{
      port: port,
      stdio: Stdio.attach(stdio, port),
      reaper: PortReaper.adopt(port, options),
      options: options,
      window: window,
      timer: start_timer(Map.get(options, :timeout, :infinity)),
      reading: reading,
      ready: reading,
      input: input,
      writable: input != nil,
      lines: if(options[:lines], do: Map.new(reading, &{&1, Lines.new()}))
    }
  end

  defp open_port(options, handover_args, stdio) do
    MuonTrap.PortBinary.open(options, :output, handover_args)
  rescue
    e ->
      Stdio.close(stdio)
      reraise e, __STACKTRACE__
  end

  @doc """
  The next step: `{:data, stream, chunks, run}` with output of `:output`
  or `:stderr` (lines with `:lines`), `{:exit, status, run}` once the
  command and its descendants are gone and every byte was returned,
  `{:timeout, [{stream, chunks}], run}` with what was queued at the
  deadline, or `{:error, error, run}`. After the last three, call `stop/1`.
  """
  @spec next(t()) ::
          {:data, :output | :stderr, [binary()], t()}
          | {:exit, non_neg_integer(), t()}
          | {:timeout, [{:output | :stderr, [binary()]}], t()}
          | {:error, error(), t()}
  def next(run) do
    case receive_event(run, 0) do
      :none -> step(run)
      {:ok, run} -> next(run)
      timeout -> timeout
    end
  end

  # After EXIT, a pipe still written to once the grace is over is held by
  # something outside the containment: it is not waited for.
  defp step(%{status: status, ready: [_ | _]} = run) when status != nil do
    if wait_time(run) == 0, do: finish(%{run | ready: []}), else: progress(run)
  end

  defp step(run), do: progress(run)

  # The hand-over comes first; once it is done, every stream and stdin
  # may move.
  defp progress(%{stdio: %Stdio{handed_over: false}} = run) do
    case Stdio.handover(run.stdio) do
      {:ok, stdio} ->
        progress(%{run | stdio: stdio, ready: run.reading, writable: run.input != nil})

      # The port binary exited before connecting: nothing was written.
      {:wait, stdio} when run.status != nil ->
        finish(%{run | stdio: stdio, reading: [], ready: []})

      {:wait, stdio} ->
        wait(%{run | stdio: stdio, ready: [], writable: false})

      # Nothing more to hand over: the port binary reports its side and exits.
      {:error, message, stdio} ->
        Stdio.close(stdio)
        run = %{run | stdio: %{stdio | handed_over: true}, reading: [], ready: []}
        progress(end_input(%{run | error: run.error || message}))
    end
  end

  defp progress(run) do
    run = guard(run, fn -> feed(run, @writes_per_step) end)

    case run.ready do
      [stream | rest] ->
        read(%{run | ready: rest}, stream)

      [] when run.writable ->
        next(run)

      [] ->
        if finished?(run), do: finish(run), else: wait(run)
    end
  end

  defp wait(run) do
    case receive_event(run, wait_time(run)) do
      :none -> step(run)
      {:ok, run} -> step(run)
      timeout -> timeout
    end
  end

  defp finished?(%{status: nil}), do: false
  defp finished?(run), do: run.reading == [] or wait_time(run) == 0

  defp wait_time(%{deadline: nil}), do: :infinity
  defp wait_time(run), do: max(run.deadline - System.monotonic_time(:millisecond), 0)

  defp read(run, stream) do
    case Stdio.next(run.stdio, stream) do
      {:data, data, stdio} ->
        # Round robin between stdout and stderr.
        run = %{run | stdio: stdio, ready: run.ready ++ [stream]}
        emit(split(run, stream, data), stream)

      {:wait, stdio} ->
        step(%{run | stdio: stdio})

      {:eof, stdio} ->
        run = %{run | stdio: stdio, reading: List.delete(run.reading, stream)}
        emit(flush(run, stream), stream)

      {:error, message, stdio} ->
        Stdio.close(stdio)
        step(%{run | stdio: stdio, reading: [], ready: [], error: run.error || message})
    end
  end

  defp emit({[], run}, _stream), do: step(run)
  defp emit({chunks, run}, stream), do: {:data, stream, chunks, run}

  defp split(%{lines: nil} = run, _stream, data), do: {[data], run}

  defp split(run, stream, data) do
    {lines, splitter} = Lines.split(Map.fetch!(run.lines, stream), data)
    {lines, %{run | lines: Map.put(run.lines, stream, splitter)}}
  end

  defp flush(%{lines: nil} = run, _stream), do: {[], run}

  defp flush(run, stream) do
    {Lines.flush(Map.fetch!(run.lines, stream)),
     %{run | lines: Map.put(run.lines, stream, Lines.new())}}
  end

  # Every process is gone and the pipes are read (or the grace is over):
  # the last partial lines, then the exit.
  defp finish(%{reading: [stream | rest]} = run) do
    case flush(%{run | reading: rest}, stream) do
      {[], run} -> finish(run)
      {chunks, run} -> {:data, stream, chunks, run}
    end
  end

  defp finish(%{error: nil} = run), do: {:exit, run.status, run}
  defp finish(run), do: {:error, run.error, run}

  ## Input

  defp feed(%{writable: true} = run, n) when n > 0 do
    case next_chunk(run) do
      :done ->
        end_input(run)

      {chunk, run} ->
        piece = binary_part(chunk, 0, min(byte_size(chunk), min(run.window, @max_write)))

        case Stdio.write(run.stdio, piece) do
          {:ok, written, stdio} ->
            rest = binary_part(chunk, written, byte_size(chunk) - written)
            feed(%{run | stdio: stdio, pending: rest}, n - 1)

          {:wait, stdio} ->
            %{run | stdio: stdio, pending: chunk, writable: false}

          # The command closed its stdin: what it did not read is not
          # written, as in a shell pipeline.
          {:error, :epipe, stdio} ->
            end_input(%{run | stdio: stdio})

          {:error, reason, stdio} ->
            message = "muontrap: writing the command's stdin failed: #{inspect(reason)}"
            end_input(%{run | stdio: stdio, error: run.error || message})
        end
    end
  end

  defp feed(run, _n), do: run

  defp next_chunk(%{pending: ""} = run) do
    case Input.pull(run.input) do
      :done -> :done
      {chunk, input} -> {chunk, %{run | input: input}}
    end
  end

  defp next_chunk(run), do: {run.pending, run}

  defp end_input(run) do
    halt_input(run)
    Stdio.close_stdin(run.stdio)
    %{run | input: nil, pending: "", writable: false}
  end

  defp halt_input(run) do
    Input.halt(run.input)
  catch
    # An enumerable that raised while being pulled has nothing to halt.
    _kind, _reason -> :ok
  end

  @doc """
  Run `fun`; if it raises (a collector, an `:input` element), stop `run`
  before the exception goes on, so nothing it started outlives it.
  """
  @spec guard(t(), (() -> result)) :: result when result: term()
  def guard(run, fun) do
    fun.()
  catch
    kind, reason ->
      stop(run)
      :erlang.raise(kind, reason, __STACKTRACE__)
  end

  ## Events

  defp receive_event(run, timeout) do
    %{port: port, timer: timer, stdio: %Stdio{resource: res}} = run

    receive do
      {^port, {:data, frame}} when port != nil ->
        {:ok, handle_frame(Protocol.decode(frame), run)}

      {^port, {:exit_status, status}} when port != nil ->
        # The port binary died without reporting; nothing more will come.
        # Finish its job: kill what is left in its cgroup and remove it.
        _ = MuonTrap.Cgroup.cleanup(run.options)
        {:ok, exited(%{run | error: run.error || port_exit_error(status, run)}, status)}

      {:select, ^res, _ref, _mode} = notice ->
        {:ok, handle_select(run, Stdio.stream_of(run.stdio, notice))}

      {:timeout, ^timer, :muontrap_timeout} when timer != nil ->
        timed_out(%{run | timer: nil})
    after
      timeout -> :none
    end
  end

  # Before the hand-over the only notice is the port's connection, which
  # progress/1 checks first.
  defp handle_select(%{stdio: %Stdio{handed_over: false}} = run, _stream), do: run
  defp handle_select(run, :stdin), do: %{run | writable: run.input != nil}
  defp handle_select(run, nil), do: run

  defp handle_select(run, stream) do
    if stream in run.ready or stream not in run.reading,
      do: run,
      else: %{run | ready: run.ready ++ [stream]}
  end

  defp handle_frame({:exit, status}, run), do: exited(run, status)
  defp handle_frame({:started, _pid}, run), do: %{run | started: true}

  # EXEC_ERROR, when sent, comes first and says more.
  defp handle_frame({:error, message}, run), do: %{run | error: run.error || message}

  defp handle_frame({:exec_error, errno}, run) when errno in [:enoent, :eacces],
    do: %{run | error: {:exec_error, errno}}

  defp handle_frame(_other, run), do: run

  # Every process is gone: what is left in the pipes is the end of the
  # output, read before the exit is returned.
  defp exited(run, status) do
    PortReaper.done(run.reaper, run.port)
    run = end_input(%{run | port: nil, reaper: nil})
    deadline = System.monotonic_time(:millisecond) + @drain_grace
    %{run | status: status, deadline: deadline, ready: run.reading}
  end

  # What the command wrote before the deadline is in the pipes; releasing
  # the port (in stop/1) makes the port binary terminate and reap the
  # command and remove its cgroup on its own, or the reaper do it.
  defp timed_out(run) do
    {queued, run} =
      Enum.map_reduce(run.reading, run, fn stream, run ->
        {chunks, run} = split(run, stream, Stdio.read_queued(run.stdio, stream))
        {more, run} = flush(run, stream)
        {{stream, Enum.reject(chunks ++ more, &(&1 == ""))}, run}
      end)

    {:timeout, queued, run}
  end

  # Before any frame, the status is the errno of the BEAM's failed exec of
  # the port binary: E2BIG for arguments the kernel refuses, which
  # System.cmd/3 would return as exit status 7.
  defp port_exit_error(status, run) do
    if not run.started and MuonTrap.Nif.errno_name(status) == :e2big,
      do: {:exec_error, :e2big},
      else: "muontrap: port binary exited unexpectedly with status #{status}"
  end

  @doc """
  Stop the command (if it still runs, the port binary terminates its
  tree asynchronously) and close everything. Idempotent.
  """
  @spec stop(t()) :: :ok
  def stop(run) do
    cancel_timer(run.timer)
    halt_input(run)
    PortReaper.release(run.reaper, run.port)
    Stdio.close(run.stdio)
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
