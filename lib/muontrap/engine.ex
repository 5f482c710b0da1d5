defmodule MuonTrap.Engine do
  @moduledoc false
  # One command's life, for MuonTrap.Run (cmd/3, stream!/3) and the
  # daemon (MuonTrap.Daemon.Pipes): its start (pipes and channel, the
  # spawner's fork of its supervisor), events from messages, reads of one
  # chunk, the drain after EXIT, the supervisor dying, the stop. Owners
  # add only their policies.
  #
  # A plain structure driven by its owner's messages: a GenServer passes
  # them to handle_message/2, a receive loop uses await/2. Only await/2,
  # drain/3 and terminate/3 block.
  #
  # Events:
  #   * a frame, decoded (`MuonTrap.Protocol.decode/1`): {:started, pid},
  #     {:exit, status}, {:error, message}, {:exec_error, errno},
  #     {:notify, pairs}, {:signaled, result}, {:watchdog, cause}
  #   * {:supervisor, os_pid}: the command's supervisor runs
  #   * {:port_died, nil, error}: the supervisor is gone without EXIT
  #     (what is left of its process group and cgroup is killed already)
  #   * :timeout: cmd/3's `:timeout` fired
  #   * :handed_over, :writable: stdin may take writes
  #   * {:data, stream, binary}, {:eof, stream}, {:pipe_error, message}

  require Logger

  alias MuonTrap.{Cgroup, Nif, Owner, PortBinary, PortReaper, Stdio}
  alias MuonTrap.Engine.Timers

  # How long the pipes are read after EXIT. Every process of the command
  # is gone by then, so what is left is at most a pipe's worth; more can
  # only come from something that escaped containment.
  @drain_grace 1_000

  # With `lazy_channel: true`, how long the channel waits for the output's
  # end before it is read anyway: a pipe held open by something outside
  # the containment must not keep cmd/3 from seeing EXIT, nor from seeing
  # its supervisor die. Long enough that a start in a burst, which waits
  # its turn for a fork, does not read the channel early and wake again
  # for STARTED and EXIT apart (docs/performance.md, round 12).
  @lazy_arm 250

  defstruct stdio: nil,
            # The channel may still bring frames (until EXIT or its end).
            live: false,
            # :handed_over was not reported yet.
            announce: true,
            # The channel is read once the output is at its end, or after
            # @lazy_arm ms (cmd/3's `lazy_channel: true`): a short
            # command's HELLO, STARTED and EXIT then come in one or two
            # reads, not three wake-ups. :pending until the first read,
            # then the timer, then nil.
            lazy: nil,
            options: %{},
            os_pid: :error,
            # Takes the command over from a caller that lets go of it
            # early or dies (cmd/3).
            reaper: nil,
            # An `:owner` other than the caller, watched by the reaper
            # (MuonTrap.Owner), until settle_owner/1.
            owner: nil,
            timer: nil,
            # Output streams not at EOF yet, and those that may have data now.
            reading: [],
            ready: [],
            started: false,
            status: nil,
            deadline: nil,
            # EXIT came with an end notice arranged: an empty pipe is at
            # its end (read/1).
            final: false

  @typedoc "A command's channel, pipes and progress."
  @type t :: %__MODULE__{}

  @typedoc "Something that happened to the command (above)."
  @type event :: term()

  @doc """
  Start the command for validated, host-checked `options`: its pipes
  (`:streams` to read, `:stdin` true for a stdin pipe, the daemon's
  `:listeners`) and its supervisor. `reaper: true` names a
  `MuonTrap.PortReaper` as heir, for a caller that may let go early,
  which also watches an `:owner` pid (not the caller's own) with it;
  `:timeout` (milliseconds) gives a `:timeout` event; `lazy_channel: true`
  reads the channel only once every output stream is at its end (for an
  owner that acts on no frame before: cmd/3, stream!/3).
  """
  @spec start(map(), keyword()) :: t()
  def start(options, spec) do
    reading = Keyword.get(spec, :streams, [])
    listeners = spec[:listeners]
    streams = if spec[:stdin], do: reading ++ [:stdin], else: reading
    capture = if reading != [], do: :output, else: :none
    # The deadline counts from the call.
    timer = Timers.start(Keyword.get(spec, :timeout, :infinity))

    # cmd/3 and stream!/3 learn of their command's end from its end
    # notice (MuonTrap.Notices), read when the output is at its end.
    lazy = Keyword.get(spec, :lazy_channel, false) and reading != []
    notice = lazy and MuonTrap.Platform.info().end_notices

    stdio =
      try do
        stdio = Stdio.open(PortBinary.window(options), streams, listeners && listeners.resource)
        start_command(stdio, options, capture, notice)
      rescue
        e ->
          Timers.cancel(timer)
          reraise e, __STACKTRACE__
      end

    owner = if spec[:reaper] && spec[:owner], do: Owner.new(spec[:owner], stdio.resource)

    %__MODULE__{
      stdio: stdio,
      live: true,
      options: options,
      reaper: if(spec[:reaper], do: PortReaper.adopt(stdio, options, owner)),
      owner: owner,
      timer: timer,
      reading: reading,
      # Each output pipe is watched from the hand-over (Stdio.hand_over!/3):
      # read on its first notice.
      ready: [],
      lazy: if(lazy, do: :pending)
    }
  end

  defp start_command(stdio, options, capture, notice) do
    PortBinary.start(stdio, options, capture, notice)
  rescue
    e ->
      Stdio.close(stdio)
      reraise e, __STACKTRACE__
  end

  @doc """
  Handle a message of the owner's: `{events, engine}`, or `:unknown` for
  one that is not about this command.
  """
  @spec handle_message(t(), term()) :: {[event()], t()} | :unknown
  def handle_message(%{timer: timer} = engine, {:timeout, timer, :muontrap_timeout})
      when timer != nil,
      do: {[:timeout], %{engine | timer: nil}}

  def handle_message(%{lazy: lazy} = engine, {:timeout, lazy, :muontrap_arm})
      when is_reference(lazy) do
    arm_channel(engine)
    {[], %{engine | lazy: nil}}
  end

  def handle_message(%{stdio: %Stdio{resource: res}} = engine, {:select, res, _, _} = notice),
    do: handle_select(engine, Stdio.stream_of(engine.stdio, notice))

  # The command's end notice: EXIT is in the channel.
  def handle_message(%{stdio: %Stdio{notice: id}} = engine, {:muontrap_ended, id})
      when id != nil do
    Timers.cancel_arm(engine.lazy)
    handle_select(%{engine | lazy: nil}, :channel)
  end

  # A reminder the owner sent itself (read_on/1): one more chunk to read.
  def handle_message(%{stdio: %Stdio{resource: r}} = engine, {:muontrap_read, r}),
    do: {[], engine}

  def handle_message(_engine, _message), do: :unknown

  defp handle_select(%{live: true} = engine, :channel), do: channel(engine)
  defp handle_select(engine, :channel), do: {[], engine}
  defp handle_select(engine, :stdin), do: {[:writable], engine}

  defp handle_select(engine, stream) do
    if stream in engine.reading and stream not in engine.ready,
      do: {[], %{engine | ready: engine.ready ++ [stream]}},
      else: {[], engine}
  end

  # Every frame the channel holds, as events; its end without EXIT is the
  # supervisor's death.
  defp channel(engine) do
    {frames, state} = Stdio.recv(engine.stdio)
    {events, engine} = Enum.flat_map_reduce(frames, engine, &frame/2)

    if state == :eof and engine.live,
      do: died(engine, events),
      else: {events, engine}
  end

  defp frame({:supervisor, pid} = event, engine), do: {[event], %{engine | os_pid: pid}}
  defp frame({:exit, status} = event, engine), do: {[event], exited(engine, status)}
  defp frame({:started, _pid} = event, engine), do: {[event], %{engine | started: true}}
  defp frame(event, engine), do: {[event], engine}

  # The supervisor is gone without EXIT (SIGKILLed, say): its command died
  # with it (PR_SET_PDEATHSIG); kill what is left of the command's process
  # group, and of its cgroup.
  defp died(engine, events) do
    _ = Nif.stdio_kill(engine.stdio.resource, :group)
    cleanup_cgroup(engine.options)
    error = "muontrap: the command's supervisor exited unexpectedly"
    {events ++ [{:port_died, nil, error}], exited(engine, :died)}
  end

  # The next message about the command within `timeout` ms, handled.
  defp await(engine, timeout) do
    %{timer: timer, lazy: lazy} = engine

    {res, notice} =
      if engine.stdio, do: {engine.stdio.resource, engine.stdio.notice}, else: {nil, nil}

    receive do
      {:select, ^res, _, _} = message when res != nil -> handled(engine, message)
      {:muontrap_ended, ^notice} = message when notice != nil -> handled(engine, message)
      {:timeout, ^timer, :muontrap_timeout} = msg when timer != nil -> handled(engine, msg)
      {:timeout, ^lazy, :muontrap_arm} = msg when is_reference(lazy) -> handled(engine, msg)
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
  Move the pipes on by one step: `:handed_over` first (stdin may take
  writes), then one read of at most the window from the next stream
  that may have data, in turn, and the channel's first frames.
  """
  @spec read(t()) :: {[event()], t()}
  def read(%{stdio: nil} = engine), do: {[], engine}

  def read(%{announce: true, lazy: :pending} = engine) do
    lazy = Timers.start_arm(@lazy_arm)
    {[:handed_over], %{engine | announce: false, lazy: lazy}}
  end

  def read(%{announce: true} = engine) do
    arm_channel(engine)
    {[:handed_over], %{engine | announce: false}}
  end

  def read(%{ready: [stream | rest]} = engine) do
    next = if engine.final, do: &Stdio.next_after_end/2, else: &Stdio.next/2

    case next.(engine.stdio, stream) do
      {:data, data, stdio} ->
        {[{:data, stream, data}], %{engine | stdio: stdio, ready: rest ++ [stream]}}

      {:wait, stdio} ->
        {[], %{engine | stdio: stdio, ready: rest}}

      # After EXIT with an end notice, an empty pipe is at its end
      # (Stdio.next_after_end/2): no process that could write to it is
      # left, and the supervisor keeps it open only so that its end wakes
      # nobody.
      {:eof, stdio} ->
        reading = List.delete(engine.reading, stream)
        engine = if reading == [], do: arm_early(engine), else: engine
        {[{:eof, stream}], %{engine | stdio: stdio, ready: rest, reading: reading}}

      {:error, message, stdio} ->
        {[{:pipe_error, message}], close(%{engine | stdio: stdio})}
    end
  end

  def read(engine), do: {[], engine}

  # The channel is read on its own notices, like the pipes: the first one
  # is ours, so its frames come through handle_message/2.
  defp arm_channel(%{stdio: %Stdio{resource: res, ref: ref}, live: true}),
    do: send(self(), {:select, res, ref, :ready_input})

  defp arm_channel(_engine), do: :ok

  # The output is at its end: the channel now, not at the timer.
  defp arm_early(%{lazy: lazy} = engine) when is_reference(lazy) do
    Timers.cancel_arm(lazy)
    arm_channel(engine)
    %{engine | lazy: nil}
  end

  defp arm_early(engine), do: engine

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
  # over).
  defp finished?(%{status: nil}), do: false
  defp finished?(%{stdio: nil}), do: true
  defp finished?(engine), do: drained?(engine)

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
  After EXIT (or the supervisor's death): read every output pipe to EOF,
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

  @doc "A daemon's stop: `MuonTrap.Engine.Terminate.terminate/3`."
  @spec terminate(t(), acc, ([event()], acc -> acc)) :: {acc, t()} when acc: term()
  defdelegate terminate(engine, acc, fun), to: MuonTrap.Engine.Terminate

  @doc "What `stream`'s pipe holds now, without waiting (at a `:timeout`)."
  @spec read_queued(t(), :output | :stderr) :: binary()
  def read_queued(%{stdio: nil}, _stream), do: ""
  def read_queued(engine, stream), do: Stdio.read_queued(engine.stdio, stream)

  @doc "Write what fits of `data` into stdin (`Stdio.write/2`)."
  @spec write(t(), binary()) ::
          {:ok, non_neg_integer(), t()} | {:wait, t()} | {:error, term(), t()}
  def write(%{stdio: %Stdio{} = stdio} = engine, data) do
    case Stdio.write(stdio, data) do
      {:ok, n, stdio} -> {:ok, n, %{engine | stdio: stdio}}
      {:wait, stdio} -> {:wait, %{engine | stdio: stdio}}
      {:error, reason, stdio} -> {:error, reason, %{engine | stdio: stdio}}
    end
  end

  def write(%{stdio: nil} = engine, _data), do: {:error, :closed, engine}

  @doc "Close the command's stdin, so that it reads EOF. Idempotent."
  @spec close_stdin(t()) :: :ok
  def close_stdin(%{stdio: stdio}), do: Stdio.close_stdin(stdio)

  @doc """
  Close the pipes and the channel without reading more (a channel still
  open: the supervisor stops the command). Idempotent.
  """
  @spec close(t()) :: t()
  def close(engine) do
    Timers.cancel_arm(engine.lazy)
    Stdio.close(engine.stdio)
    %{engine | stdio: nil, live: false, lazy: nil, reading: [], ready: []}
  end

  @doc """
  Once the caller is done with the command: `{:up, engine}`, or
  `{{:down, owner, reason}, engine}` if its `:owner` went down first (the
  command was terminated for it). The owner's watcher then leaves the
  caller alone; later calls are `:up`.
  """
  @spec settle_owner(t()) :: {:up | {:down, pid(), term()}, t()}
  def settle_owner(%{owner: nil} = engine), do: {:up, engine}

  def settle_owner(%{owner: owner} = engine) do
    case Owner.settle(owner) do
      :up -> {:up, %{engine | owner: nil}}
      {:down, reason} -> {{:down, owner.pid, reason}, %{engine | owner: nil}}
    end
  end

  @doc """
  Let go of the command and close everything: if it still runs, its
  supervisor (watched by the reaper, if any) terminates its tree
  asynchronously. Idempotent.
  """
  @spec stop(t()) :: t()
  def stop(%{live: true, reaper: reaper, stdio: %Stdio{} = stdio} = engine) when reaper != nil do
    Timers.cancel(engine.timer)
    Timers.cancel_arm(engine.lazy)
    PortReaper.release(reaper, stdio)
    Stdio.forget(stdio)

    %{
      engine
      | stdio: nil,
        live: false,
        lazy: nil,
        reaper: nil,
        timer: nil,
        reading: [],
        ready: []
    }
  end

  def stop(engine) do
    Timers.cancel(engine.timer)
    PortReaper.done(engine.reaper)
    close(%{engine | reaper: nil, timer: nil})
  end

  # Every process is gone: what is left in the pipes is the end of the
  # output, read before the exit is acted on. The supervisor, waiting for
  # its channel to close after EXIT, exits.
  defp exited(engine, status) do
    PortReaper.done(engine.reaper)
    # With an end notice, the supervisor keeps the output pipes until the
    # channel closes: it closes with them (close/1), after the last read.
    # A supervisor that died reaped nothing: its pipes end as they do.
    final = engine.stdio.notice != nil and status != :died
    unless final, do: Nif.stdio_close_channel(engine.stdio.resource)
    close_stdin(engine)
    deadline = System.monotonic_time(:millisecond) + @drain_grace

    %{
      engine
      | live: false,
        reaper: nil,
        status: status,
        deadline: deadline,
        ready: engine.reading,
        final: final
    }
  end

  # The supervisor died without cleaning up (it was SIGKILLed, say): kill
  # what is left in its cgroup and remove the group.
  defp cleanup_cgroup(options) do
    with {:error, reason} <- Cgroup.cleanup(options),
         do: Logger.error("could not clean up the cgroup: #{inspect(reason)}")

    :ok
  end
end
