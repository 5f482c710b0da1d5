defmodule MuonTrap.Run do
  @moduledoc false
  # One command run from the calling process, under cmd/3 and stream!/3:
  # cmd's policies over the engine (MuonTrap.Engine): the `:input` being
  # written, `:lines`, the `:timeout`.
  #
  # next/1 moves the command on by one step and returns the next output,
  # pulling only as much as it returns, so a caller that does not ask for
  # more pauses the command (its pipe fills) instead of growing a mailbox.
  # Input is written between reads, never blocking, so a command that fills
  # its output while it waits for input cannot deadlock the caller.
  #
  # The caller owns the pipes, a MuonTrap.PortReaper the port: if the
  # caller dies, the supervisor terminates the command's tree (the reaper
  # sees to it), and the NIF closes the pipes.

  alias MuonTrap.{Engine, Input, Lines, Owner}

  # Writes to stdin per step before output is read and messages looked at.
  @writes_per_step 4

  # The most one write to stdin moves: a write that fills the whole pipe
  # wakes the reader only once it is done, so the two take turns instead
  # of overlapping (docs/performance.md, "`:input` and `stream!/3`").
  @max_write 65_536

  @enforce_keys [:engine, :options, :window]
  defstruct [
    :engine,
    :options,
    :window,
    input: nil,
    pending: "",
    writable: false,
    lines: nil,
    error: nil
  ]

  @typedoc "A running command."
  @type t :: %__MODULE__{}

  @typedoc """
  Why a command could not run or finish: an exec errno, a `muontrap:`
  message, or its `:owner` that went down (the command was terminated).
  """
  @type error ::
          {:exec_error, :enoent | :eacces | :e2big}
          | {:owner_down, pid(), term()}
          | String.t()

  @doc """
  Start the command for validated, host-checked `options`. With
  `stderr: :separate` its stderr gets a pipe of its own. Its owner is
  the calling process, plus any other `:owner` (`MuonTrap.Owner`).
  """
  @spec start(MuonTrap.Options.t()) :: t()
  def start(options) do
    reading = if options[:stderr] == :separate, do: [:output, :stderr], else: [:output]
    input = options[:input]

    engine =
      Engine.start(options,
        streams: reading,
        stdin: input != nil,
        reaper: true,
        lazy_channel: true,
        timeout: Map.get(options, :timeout, :infinity),
        owner: Owner.for_caller(options)
      )

    %__MODULE__{
      engine: engine,
      options: options,
      window: MuonTrap.PortBinary.window(options),
      input: input,
      lines: if(options[:lines], do: Map.new(reading, &{&1, Lines.new()}))
    }
  end

  @doc """
  The next step: `{:data, stream, chunks, run}` with output of `:output`
  or `:stderr` (lines with `:lines`), `{:exit, status, run}` once the
  command and its descendants are gone and every byte was returned,
  `{:timeout, [{stream, chunks}], run}` with what was queued at the
  deadline, or `{:error, error, run}`. After the last three, call `stop/1`.
  Once the command ended, an `:owner` that went down first makes it
  `{:error, {:owner_down, owner, reason}, run}`.
  """
  @spec next(t()) ::
          {:data, :output | :stderr, [binary()], t()}
          | {:exit, non_neg_integer(), t()}
          | {:timeout, [{:output | :stderr, [binary()]}], t()}
          | {:error, error(), t()}
  def next(run) do
    case step(run) do
      {:data, _stream, _chunks, _run} = data -> data
      {kind, result, run} when kind in [:exit, :timeout, :error] -> settle(kind, result, run)
    end
  end

  defp settle(kind, result, run) do
    case Engine.settle_owner(run.engine) do
      {:up, engine} ->
        {kind, result, %{run | engine: engine}}

      {{:down, owner, reason}, engine} ->
        {:error, {:owner_down, owner, reason}, %{run | engine: engine}}
    end
  end

  defp step(run) do
    # Input is written between steps; while it can be, nothing is waited for.
    run = guard(run, fn -> feed(run, @writes_per_step) end)

    case Engine.step(run.engine, if(run.writable, do: 0, else: :infinity)) do
      :finished -> finish(run)
      {events, engine} -> events(events, %{run | engine: engine})
    end
  end

  defp events([], run), do: step(run)
  defp events([:timeout | _], run), do: timed_out(run)
  defp events([{:data, stream, data}], run), do: emit(split(run, stream, data), stream)
  defp events([{:eof, stream}], run), do: emit(flush(run, stream), stream)
  defp events([event | rest], run), do: events(rest, event(event, run))

  # Every process is gone: what is left in the pipes is the end of the
  # output, read (the engine's drain) before the exit is returned.
  defp event({:exit, _status}, run), do: end_input(run)
  defp event({:port_died, _status, error}, run), do: end_input(%{run | error: run.error || error})
  # EXEC_ERROR, when sent, comes first and says more.
  defp event({:error, message}, run), do: %{run | error: run.error || message}

  defp event({:exec_error, errno}, run) when errno in [:enoent, :eacces, :e2big],
    do: %{run | error: {:exec_error, errno}}

  defp event(writable, run) when writable in [:handed_over, :writable],
    do: %{run | writable: run.input != nil}

  # Nothing more to hand over or read: the supervisor reports its side
  # and exits.
  defp event({:pipe_error, message}, run), do: end_input(%{run | error: run.error || message})
  defp event(_other, run), do: run

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
  defp finish(%{engine: %{reading: [stream | rest]} = engine} = run) do
    case flush(%{run | engine: %{engine | reading: rest, ready: []}}, stream) do
      {[], run} -> finish(run)
      {chunks, run} -> {:data, stream, chunks, run}
    end
  end

  defp finish(%{error: nil} = run), do: {:exit, run.engine.status, run}
  defp finish(run), do: {:error, run.error, run}

  ## Input

  defp feed(%{writable: true} = run, n) when n > 0 do
    case next_chunk(run) do
      :done ->
        end_input(run)

      {chunk, run} ->
        piece = binary_part(chunk, 0, min(byte_size(chunk), min(run.window, @max_write)))

        case Engine.write(run.engine, piece) do
          {:ok, written, engine} ->
            rest = binary_part(chunk, written, byte_size(chunk) - written)
            feed(%{run | engine: engine, pending: rest}, n - 1)

          {:wait, engine} ->
            %{run | engine: engine, pending: chunk, writable: false}

          # The command closed its stdin: what it did not read is not
          # written, as in a shell pipeline.
          {:error, :epipe, engine} ->
            end_input(%{run | engine: engine})

          {:error, reason, engine} ->
            message = "muontrap: writing the command's stdin failed: #{inspect(reason)}"
            end_input(%{run | engine: engine, error: run.error || message})
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
    Engine.close_stdin(run.engine)
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

  # What the command wrote before the deadline is in the pipes; releasing
  # the command (in stop/1) makes the supervisor terminate and reap the
  # command and remove its cgroup on its own, or the reaper do it.
  defp timed_out(run) do
    {queued, run} =
      Enum.map_reduce(run.engine.reading, run, fn stream, run ->
        {chunks, run} = split(run, stream, Engine.read_queued(run.engine, stream))
        {more, run} = flush(run, stream)
        {{stream, Enum.reject(chunks ++ more, &(&1 == ""))}, run}
      end)

    {:timeout, queued, run}
  end

  @doc """
  Stop the command (if it still runs, the supervisor terminates its
  tree asynchronously) and close everything. Idempotent.
  """
  @spec stop(t()) :: :ok
  def stop(run) do
    halt_input(run)
    # Before the command is let go: the owner's watcher then leaves the
    # caller's mailbox alone.
    {_owner, engine} = Engine.settle_owner(run.engine)
    _ = Engine.stop(engine)
    :ok
  end
end
