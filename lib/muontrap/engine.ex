defmodule MuonTrap.Engine do
  @moduledoc false
  # One command's life, for MuonTrap.Run (cmd/3, stream!/3) and the
  # daemon (MuonTrap.Daemon.Pipes): the port binary and pipes, the
  # hand-over, events from messages, reads of one chunk, the drain after
  # EXIT, the port binary dying, the stop. Owners add only their policies.
  #
  # A plain structure driven by its owner's messages: a GenServer passes
  # them to handle_message/2, a receive loop uses await/2. Only await/2,
  # drain/3 and terminate/3 block.
  #
  # Events:
  #   * a frame, decoded (`MuonTrap.Protocol.decode/1`): {:started, pid},
  #     {:exit, status}, {:error, message}, {:exec_error, errno},
  #     {:notify, pairs}, {:signaled, result}, {:watchdog, cause}
  #   * {:port_died, status, error}: the port binary exited without EXIT
  #     (what is left of its cgroup is cleaned up already)
  #   * {:port_closed, reason}: the port closed under a linked owner
  #   * :timeout: cmd/3's `:timeout` fired
  #   * :handed_over, :writable: stdin may take writes
  #   * {:data, stream, binary}, {:eof, stream}, {:pipe_error, message}

  require Logger

  alias MuonTrap.{Cgroup, PortBinary, PortReaper, Protocol, Stdio}

  # How long the pipes are read after EXIT. Every process of the command
  # is gone by then, so what is left is at most a pipe's worth; more can
  # only come from something that escaped containment.
  @drain_grace 1_000

  defstruct port: nil,
            stdio: nil,
            options: %{},
            os_pid: :error,
            # Owns the port for a caller that lets go of it early (cmd/3).
            reaper: nil,
            timer: nil,
            # Output streams not at EOF yet, and those that may have data now.
            reading: [],
            ready: [],
            started: false,
            status: nil,
            deadline: nil

  @typedoc "A command's port binary, pipes and progress."
  @type t :: %__MODULE__{}

  @typedoc "Something that happened to the command (above)."
  @type event :: term()

  @doc """
  Start the command for validated, host-checked `options`: its pipes
  (`:streams` to read, `:stdin` true for a stdin pipe, the daemon's
  `:listeners`) and its port binary. `reaper: true` gives the port to a
  `MuonTrap.PortReaper`, for a caller that may let go early; `:timeout`
  (milliseconds) gives a `:timeout` event.
  """
  @spec start(map(), keyword()) :: t()
  def start(options, spec) do
    reading = Keyword.get(spec, :streams, [])
    listeners = spec[:listeners]
    streams = if spec[:stdin], do: reading ++ [:stdin], else: reading

    {stdio, handover} =
      if streams != [] or listeners != nil,
        do: Stdio.open(PortBinary.window(options), streams, listeners && listeners.resource),
        else: {nil, nil}

    capture = if reading != [], do: :output, else: :none
    # The deadline counts from the call, not from the port binary having
    # its pipes: PortBinary.open/3 waits for that, about a millisecond.
    timer = start_timer(Keyword.get(spec, :timeout, :infinity))
    port = open_port(options, capture, handover, stdio, timer)

    os_pid =
      case Port.info(port, :os_pid) do
        {:os_pid, pid} -> pid
        nil -> :error
      end

    %__MODULE__{
      port: port,
      stdio: stdio && Stdio.attach(stdio, port),
      os_pid: os_pid,
      options: options,
      reaper: if(spec[:reaper], do: PortReaper.adopt(port, options)),
      timer: timer,
      reading: reading
    }
  end

  defp open_port(options, capture, handover, stdio, timer) do
    PortBinary.open(options, capture, handover)
  rescue
    e ->
      cancel_timer(timer)
      Stdio.close(stdio)
      reraise e, __STACKTRACE__
  end

  @doc """
  Handle a message of the owner's: `{events, engine}`, or `:unknown` for
  one that is not about this command.
  """
  @spec handle_message(t(), term()) :: {[event()], t()} | :unknown
  def handle_message(%{port: port} = engine, {port, {:data, frame}}) when port != nil do
    case Protocol.decode(frame) do
      {:exit, status} = event -> {[event], exited(engine, status)}
      {:started, _pid} = event -> {[event], %{engine | started: true}}
      event -> {[event], engine}
    end
  end

  def handle_message(%{port: port} = engine, {port, {:exit_status, status}}) when port != nil do
    # The port binary died without reporting; nothing more will come.
    # Finish its job: kill what is left in its cgroup and remove it.
    cleanup_cgroup(engine.options)
    {[{:port_died, status, port_exit_error(status, engine)}], exited(engine, status)}
  end

  def handle_message(%{port: port} = engine, {:EXIT, port, reason}) when port != nil do
    {[{:port_closed, reason}], %{engine | port: nil}}
  end

  def handle_message(%{timer: timer} = engine, {:timeout, timer, :muontrap_timeout})
      when timer != nil,
      do: {[:timeout], %{engine | timer: nil}}

  def handle_message(%{stdio: %Stdio{resource: res}} = engine, {:select, res, _, _} = notice),
    do: handle_select(engine, Stdio.stream_of(engine.stdio, notice))

  # A reminder the owner sent itself (read_on/1): one more chunk to read.
  def handle_message(%{stdio: %Stdio{resource: r}} = engine, {:muontrap_read, r}),
    do: {[], engine}

  def handle_message(_engine, _message), do: :unknown

  defp handle_select(%{stdio: %Stdio{handed_over: true}} = e, :stdin), do: {[:writable], e}

  defp handle_select(%{stdio: %Stdio{handed_over: true}} = engine, stream) do
    if stream in engine.reading and stream not in engine.ready,
      do: {[], %{engine | ready: engine.ready ++ [stream]}},
      else: {[], engine}
  end

  # Before the hand-over the only notice is the port's connection, which
  # read/1 checks first.
  defp handle_select(engine, _stream), do: {[], engine}

  # The next message about the command within `timeout` ms, handled.
  defp await(engine, timeout) do
    %{port: port, timer: timer} = engine
    res = if engine.stdio, do: engine.stdio.resource

    receive do
      {^port, _} = message when port != nil -> handled(engine, message)
      {:EXIT, ^port, _} = message when port != nil -> handled(engine, message)
      {:select, ^res, _, _} = message when res != nil -> handled(engine, message)
      {:timeout, ^timer, :muontrap_timeout} = msg when timer != nil -> handled(engine, msg)
    after
      timeout -> :none
    end
  end

  defp handled(engine, message) do
    case handle_message(engine, message) do
      :unknown -> {[], engine}
      handled -> handled
    end
  end

  @doc """
  Move the pipes on by one step: the hand-over first, then one read of at
  most the window from the next stream that may have data, in turn.
  """
  @spec read(t()) :: {[event()], t()}
  def read(%{stdio: nil} = engine), do: {[], engine}

  def read(%{stdio: %Stdio{handed_over: false}} = engine) do
    case Stdio.handover(engine.stdio) do
      {:ok, stdio} -> {[:handed_over], %{engine | stdio: stdio, ready: engine.reading}}
      {:wait, stdio} -> {[], %{engine | stdio: stdio}}
      {:error, message, stdio} -> {[{:pipe_error, message}], close(%{engine | stdio: stdio})}
    end
  end

  def read(%{ready: [stream | rest]} = engine) do
    case Stdio.next(engine.stdio, stream) do
      {:data, data, stdio} ->
        {[{:data, stream, data}], %{engine | stdio: stdio, ready: rest ++ [stream]}}

      {:wait, stdio} ->
        {[], %{engine | stdio: stdio, ready: rest}}

      {:eof, stdio} ->
        reading = List.delete(engine.reading, stream)
        {[{:eof, stream}], %{engine | stdio: stdio, ready: rest, reading: reading}}

      {:error, message, stdio} ->
        {[{:pipe_error, message}], close(%{engine | stdio: stdio})}
    end
  end

  def read(engine), do: {[], engine}

  @doc """
  After a read that left a stream with data to come, the owner sends
  itself a reminder: one chunk per message it handles, so a slow owner
  pauses its command (the pipe fills) instead of growing its mailbox.
  """
  @spec read_on(t()) :: t()
  def read_on(%{ready: [_ | _], stdio: %Stdio{resource: res}} = engine) do
    send(self(), {:muontrap_read, res})
    engine
  end

  def read_on(engine), do: engine

  # The command is gone and its pipes are read (or the drain's grace is
  # over); pipes never handed over had no writer.
  defp finished?(%{status: nil}), do: false
  defp finished?(%{stdio: %Stdio{handed_over: true}} = engine), do: drained?(engine)
  defp finished?(_engine), do: true

  defp drained?(engine), do: engine.reading == [] or wait_time(engine) == 0

  defp wait_time(%{deadline: nil}), do: :infinity
  defp wait_time(engine), do: max(engine.deadline - System.monotonic_time(:millisecond), 0)

  @doc """
  One step of the command's life, for an owner that loops: a message
  already in the mailbox first, else the hand-over or a read, else a wait
  of at most `wait` milliseconds (and no later than the drain's end) for
  the next message. `{events, engine}` (perhaps no events), or
  `:finished` once the command is gone and its pipes are drained.
  """
  @spec step(t(), timeout()) :: {[event()], t()} | :finished
  def step(engine, wait) do
    case await(engine, 0) do
      :none -> read_step(engine, wait)
      handled -> handled
    end
  end

  defp read_step(engine, wait) do
    with false <- finished?(engine),
         {[], engine} <- read(engine) do
      cond do
        engine.ready != [] -> read_step(engine, wait)
        finished?(engine) -> :finished
        true -> with :none <- await(engine, min(wait, wait_time(engine))), do: {[], engine}
      end
    else
      true -> :finished
      read -> read
    end
  end

  @doc """
  After EXIT (or the port's death): read every output pipe to EOF,
  handing the events to `fun`, for at most the drain's grace, then close
  everything: `step/2` to the end.
  """
  @spec drain(t(), acc, ([event()], acc -> acc)) :: {acc, t()} when acc: term()
  def drain(engine, acc, fun) do
    case step(engine, :infinity) do
      :finished -> {acc, close(engine)}
      {events, engine} -> drain(engine, fun.(events, acc), fun)
    end
  end

  @doc """
  For an owner that must see its command gone (a daemon's stop): ask the
  port binary to terminate the tree and wait for EXIT, reading the pipes
  and handing events to `fun` meanwhile, then drain them. A port binary
  that has not finished within `MuonTrap.PortReaper.stop_timeout/1` is
  stuck: it is SIGKILLed and the cgroup cleaned up.
  """
  @spec terminate(t(), acc, ([event()], acc -> acc)) :: {acc, t()} when acc: term()
  def terminate(%{port: port} = engine, acc, fun) when port != nil do
    Port.command(port, Protocol.terminate())
    deadline = System.monotonic_time(:millisecond) + PortReaper.stop_timeout(engine.options)
    stopping(engine, acc, fun, deadline)
  end

  def terminate(engine, acc, fun), do: drain(engine, acc, fun)

  defp stopping(engine, acc, fun, deadline) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    case step(engine, left) do
      {events, %{port: nil} = engine} ->
        acc = fun.(events, acc)
        if died?(events, engine), do: {acc, close(engine)}, else: drain(engine, acc, fun)

      {events, engine} when left > 0 ->
        stopping(engine, fun.(events, acc), fun, deadline)

      {events, engine} ->
        Logger.warning(
          "muontrap: the port binary did not finish within " <>
            "#{PortReaper.stop_timeout(engine.options)} ms of being asked to stop " <>
            "(stopped?); killing it and cleaning up"
        )

        PortReaper.kill(engine.port, engine.options)
        {fun.(events, acc), close(%{engine | port: nil})}

      :finished ->
        {acc, close(engine)}
    end
  end

  # The port binary is gone without EXIT: its exit status (the cgroup is
  # cleaned up already), or its port closed (a write failed, EPIPE).
  defp died?(events, engine) do
    cond do
      Enum.any?(events, &match?({:port_died, _, _}, &1)) -> true
      Enum.any?(events, &match?({:port_closed, _}, &1)) -> cleanup_cgroup(engine.options) == :ok
      true -> false
    end
  end

  @doc "What `stream`'s pipe holds now, without waiting (at a `:timeout`)."
  @spec read_queued(t(), :output | :stderr) :: binary()
  def read_queued(%{stdio: nil}, _stream), do: ""
  def read_queued(engine, stream), do: Stdio.read_queued(caught_up(engine).stdio, stream)

  @doc "Write what fits of `data` into stdin, once the pipes are handed over (`Stdio.write/2`)."
  @spec write(t(), binary()) ::
          {:ok, non_neg_integer(), t()} | {:wait, t()} | {:error, term(), t()}
  def write(%{stdio: %Stdio{handed_over: true} = stdio} = engine, data) do
    case Stdio.write(stdio, data) do
      {:ok, n, stdio} -> {:ok, n, %{engine | stdio: stdio}}
      {:wait, stdio} -> {:wait, %{engine | stdio: stdio}}
      {:error, reason, stdio} -> {:error, reason, %{engine | stdio: stdio}}
    end
  end

  def write(%{stdio: nil} = engine, _data), do: {:error, :closed, engine}
  def write(engine, _data), do: {:wait, engine}

  @doc "Close the command's stdin, so that it reads EOF. Idempotent."
  @spec close_stdin(t()) :: :ok
  def close_stdin(%{stdio: stdio}), do: Stdio.close_stdin(stdio)

  @doc "Close the pipes without reading more. Idempotent."
  @spec close(t()) :: t()
  def close(engine) do
    Stdio.close(engine.stdio)
    %{engine | stdio: nil, reading: [], ready: []}
  end

  @doc """
  Let go of the command and close everything: if it still runs, the port
  binary (or its reaper) terminates its tree asynchronously. Idempotent.
  """
  @spec stop(t()) :: t()
  def stop(engine) do
    cancel_timer(engine.timer)
    PortReaper.release(engine.reaper, engine.port)
    close(%{engine | port: nil, reaper: nil, timer: nil})
  end

  # Every process is gone: what is left in the pipes is the end of the
  # output, read before the exit is acted on.
  defp exited(engine, status) do
    engine = caught_up(engine)
    PortReaper.done(engine.reaper, engine.port)
    close_stdin(engine)
    deadline = System.monotonic_time(:millisecond) + @drain_grace
    %{engine | port: nil, reaper: nil, status: status, deadline: deadline, ready: engine.reading}
  end

  # PortBinary.open/3 returns once the port has the descriptors, so an
  # EXIT or a timeout may be handled before the owner's first read did
  # the hand-over step: take it now, or the pipes would count as never
  # handed over (no writer), and the command's output would be dropped.
  defp caught_up(%{stdio: %Stdio{handed_over: false} = stdio} = engine) do
    case Stdio.handover(stdio) do
      {:ok, stdio} -> %{engine | stdio: stdio, ready: engine.reading}
      _wait_or_error -> engine
    end
  end

  defp caught_up(engine), do: engine

  # Before any frame, the status is the errno of the BEAM's failed exec of
  # the port binary: E2BIG for arguments the kernel refuses, which
  # System.cmd/3 would return as exit status 7.
  defp port_exit_error(status, engine) do
    if not engine.started and MuonTrap.Nif.errno_name(status) == :e2big,
      do: {:exec_error, :e2big},
      else: "muontrap: port binary exited unexpectedly with status #{status}"
  end

  # The port binary died without cleaning up (it was SIGKILLed, say):
  # kill what is left in its cgroup and remove the group.
  defp cleanup_cgroup(options) do
    with {:error, reason} <- Cgroup.cleanup(options),
         do: Logger.error("could not clean up the cgroup: #{inspect(reason)}")

    :ok
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
