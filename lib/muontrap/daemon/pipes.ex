defmodule MuonTrap.Daemon.Pipes do
  @moduledoc false
  # A daemon's command, through the engine (`MuonTrap.Engine`), with the
  # daemon's policies for its pipes: which to open (`Output` says what is
  # captured, `Stdin` whether there is a stdin), output read one chunk per
  # message and logged, queued stdin writes, and errors logged.
  #
  # Nothing here blocks the daemon but the drain at EXIT and the stop:
  # every wait is a select notice or a message to itself, handled by
  # handle_message/2.

  require Logger

  alias MuonTrap.Daemon.{Output, Stdin}
  alias MuonTrap.{Engine, Stdio}

  defstruct [:output, stdin: nil, engine: nil]

  @typedoc "The command (once launched), the output state and the stdin queue."
  @type t :: %__MODULE__{
          output: Output.t(),
          stdin: Stdin.t() | nil,
          engine: Engine.t() | nil
        }

  @doc "Nothing launched yet, for a daemon's validated options."
  @spec new(binary(), map()) :: t()
  def new(command, options) do
    stdin = if options[:stdin] == :pipe, do: Stdin.new()
    %__MODULE__{output: Output.new(command, options), stdin: stdin}
  end

  @doc """
  Launch the command: its pipes, the hand-over of the daemon's
  `listeners` if any, its supervisor.
  """
  @spec start(t(), map(), map() | nil) :: t()
  def start(pipes, options, listeners) do
    options =
      if Output.stderr_only?(pipes.output),
        do: Map.put(options, :capture_stderr_only, true),
        else: options

    engine =
      Engine.start(options,
        streams: Output.streams(pipes.output),
        stdin: pipes.stdin != nil and Stdin.open?(pipes.stdin),
        listeners: listeners
      )

    pump(%{pipes | engine: engine})
  end

  @doc """
  Ready for the next command of a relaunch, after `finish/1`: a fresh
  stdin, and output that counts on but waits for the readiness pattern
  again.
  """
  @spec reset(t(), map()) :: t()
  def reset(pipes, options) do
    stdin = if options[:stdin] == :pipe, do: Stdin.new()
    %{pipes | stdin: stdin, engine: nil, output: Output.reset(pipes.output)}
  end

  @doc "The bytes of output received, of every stream."
  @spec byte_count(t()) :: non_neg_integer()
  def byte_count(pipes), do: pipes.output.byte_count

  @doc """
  Handle a message about the command: `{events, pipes}` with the events
  for the daemon (frames, the port's death: see `MuonTrap.Engine`), or
  `:unknown` for any other message.
  """
  @spec handle_message(t(), term()) :: {[Engine.event()], t()} | :unknown
  def handle_message(%{stdin: %Stdin{}} = pipes, {:muontrap_write_timeout, tag}),
    do: {[], %{pipes | stdin: Stdin.expire(pipes.stdin, tag)}}

  def handle_message(
        %{engine: %Engine{stdio: %Stdio{resource: res}}} = pipes,
        {:muontrap_write, res}
      ),
      do: {[], feed(pipes)}

  def handle_message(%{engine: %Engine{}} = pipes, message) do
    case Engine.handle_message(pipes.engine, message) do
      :unknown ->
        :unknown

      {events, engine} ->
        {events, pipes} = policies(events, %{pipes | engine: engine})
        # Only a message about the pipes moves them: one read each.
        if events == [], do: {[], pump(pipes)}, else: {events, pipes}
    end
  end

  def handle_message(_pipes, _message), do: :unknown

  # One read of a pipe per message handled, so calls are served between
  # reads; a daemon that cannot keep up pauses its command (the pipe
  # fills) instead of growing its mailbox or heap.
  defp pump(pipes) do
    {events, engine} = Engine.read(pipes.engine)
    {[], pipes} = policies(events, %{pipes | engine: engine})
    %{pipes | engine: Engine.read_on(pipes.engine)}
  end

  # The pipes' events are handled here; the others go to the daemon.
  defp policies(events, pipes) do
    Enum.flat_map_reduce(events, pipes, fn
      {:data, stream, data}, pipes ->
        {[], %{pipes | output: Output.handle(pipes.output, stream, data)}}

      # At EOF the other stream may still have output; all is closed at EXIT.
      {:eof, _stream}, pipes ->
        {[], pipes}

      {:pipe_error, message}, pipes ->
        Logger.error(message)
        {[], close(pipes)}

      # Once handed over, every stream and stdin may move.
      :handed_over, pipes ->
        {[], pipes |> feed() |> pump()}

      :writable, pipes ->
        {[], feed(pipes)}

      event, pipes ->
        {[event], pipes}
    end)
  end

  @doc """
  Queue a write for `from`: `{:noreply, pipes}` (the answer comes
  later) or `{:reply, reply, pipes}` when there is no open stdin.
  """
  @spec write(t(), GenServer.from(), binary(), timeout()) ::
          {:noreply, t()} | {:reply, {:error, :no_stdin | :closed}, t()}
  def write(%{stdin: nil} = pipes, _from, _data, _timeout),
    do: {:reply, {:error, :no_stdin}, pipes}

  def write(pipes, from, data, timeout) do
    if Stdin.open?(pipes.stdin) do
      {:noreply, feed(%{pipes | stdin: Stdin.enqueue(pipes.stdin, from, data, timeout)})}
    else
      {:reply, {:error, :closed}, pipes}
    end
  end

  @doc "Close the command's stdin: `:ok`, or `{:error, :no_stdin}` without one."
  @spec close_stdin(t()) :: {:ok | {:error, :no_stdin}, t()}
  def close_stdin(%{stdin: nil} = pipes), do: {{:error, :no_stdin}, pipes}
  def close_stdin(pipes), do: {:ok, %{pipes | stdin: Stdin.close(pipes.stdin, pipes.engine)}}

  @doc """
  At EXIT: stdin is closed, what is left in the output pipes is read and
  logged (every process is gone, so it is the end), then the last
  partial lines.
  """
  @spec finish(t()) :: t()
  def finish(pipes) do
    {_, pipes} = close_stdin(pipes)
    {pipes, engine} = Engine.drain(pipes.engine, pipes, &drained/2)
    %{pipes | engine: engine, output: Output.flush(pipes.output)}
  end

  @doc """
  The daemon stops: its command's tree is terminated and waited for
  (`MuonTrap.Engine.terminate/3`), its output read and logged meanwhile.
  """
  @spec terminate(t()) :: t()
  def terminate(pipes) do
    {pipes, engine} = Engine.terminate(pipes.engine, pipes, &drained/2)
    {_, pipes} = close_stdin(%{pipes | engine: engine})
    %{pipes | output: Output.flush(pipes.output)}
  end

  defp drained(events, pipes) do
    {_daemon_events, pipes} = policies(events -- [:handed_over], pipes)
    pipes
  end

  @doc "Close everything without reading more (the supervisor died)."
  @spec close(t()) :: t()
  def close(pipes) do
    {_, pipes} = close_stdin(pipes)
    %{pipes | engine: pipes.engine && Engine.close(pipes.engine)}
  end

  defp feed(%{stdin: %Stdin{}, engine: %Engine{stdio: %Stdio{}}} = pipes) do
    {stdin, engine} = Stdin.feed(pipes.stdin, pipes.engine)
    %{pipes | stdin: stdin, engine: engine}
  end

  defp feed(pipes), do: pipes
end
