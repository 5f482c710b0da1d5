defmodule MuonTrap.Daemon.Pipes do
  @moduledoc """
  A daemon's side of its command's pipes: which to open (`Output` says
  what is captured, `Stdin` whether there is a stdin), reading them one
  chunk per message, writing queued stdin, and the last reads at EXIT.

  Nothing here blocks the daemon: every wait is a select notice or a
  message to itself, handled by `handle_message/2`.
  """

  require Logger

  alias MuonTrap.Daemon.{Listeners, Output, Stdin}
  alias MuonTrap.Stdio

  defstruct [:output, stdin: nil, stdio: nil]

  @typedoc "The pipes, the output state and the stdin queue."
  @type t :: %__MODULE__{
          output: Output.t(),
          stdin: Stdin.t() | nil,
          stdio: Stdio.t() | nil
        }

  @doc "Nothing open yet, for a daemon's validated options."
  @spec new(binary(), map()) :: t()
  def new(command, options) do
    stdin = if options[:stdin] == :pipe, do: Stdin.new()
    %__MODULE__{output: Output.new(command, options), stdin: stdin}
  end

  @doc """
  Open the pipes, and the hand-over of the daemon's `listeners` if any.
  Returns them, the options and capture to open the port with, and the
  hand-over to open the port with (`MuonTrap.PortBinary.open/3`).
  """
  @spec open(t(), map(), Listeners.t() | nil) ::
          {t(), map(), :output | :none, Stdio.handover() | []}
  def open(pipes, options, listeners \\ nil) do
    window = MuonTrap.PortBinary.window(options)
    reading = Output.streams(pipes.output)
    stdin = if pipes.stdin && Stdin.open?(pipes.stdin), do: [:stdin], else: []
    streams = reading ++ stdin

    {stdio, handover_args} =
      if streams != [] or listeners != nil,
        do: Stdio.open(window, streams, listeners && listeners.resource),
        else: {nil, []}

    options =
      if Output.stderr_only?(pipes.output),
        do: Map.put(options, :capture_stderr_only, true),
        else: options

    capture = if reading != [], do: :output, else: :none
    {%{pipes | stdio: stdio}, options, capture, handover_args}
  end

  @doc """
  Ready for the next command of a relaunch, after `finish/1`: a fresh
  stdin, and output that counts on but waits for the readiness pattern
  again.
  """
  @spec reset(t(), map()) :: t()
  def reset(pipes, options) do
    stdin = if options[:stdin] == :pipe, do: Stdin.new()
    %{pipes | stdin: stdin, stdio: nil, output: Output.reset(pipes.output)}
  end

  @doc "Serve only `port`'s binary, and start moving bytes once it connects."
  @spec attach(t(), port()) :: t()
  def attach(%__MODULE__{stdio: nil} = pipes, _port), do: pipes
  def attach(pipes, port), do: all(%{pipes | stdio: Stdio.attach(pipes.stdio, port)})

  @doc "The bytes of output received, of every stream."
  @spec byte_count(t()) :: non_neg_integer()
  def byte_count(pipes), do: pipes.output.byte_count

  @doc """
  Handle a message that is about the pipes: `{:ok, pipes}`, or `:unknown`
  for any other message.
  """
  @spec handle_message(t(), term()) :: {:ok, t()} | :unknown
  def handle_message(%{stdio: %Stdio{resource: res}} = pipes, {:select, res, _, _} = notice),
    do: {:ok, on_notice(pipes, Stdio.stream_of(pipes.stdio, notice))}

  def handle_message(%{stdio: %Stdio{resource: res}} = pipes, {:muontrap_read, res, stream}),
    do: {:ok, read(pipes, stream)}

  def handle_message(%{stdio: %Stdio{resource: res}} = pipes, {:muontrap_write, res}),
    do: {:ok, feed(pipes)}

  def handle_message(%{stdin: %Stdin{}} = pipes, {:muontrap_write_timeout, tag}),
    do: {:ok, %{pipes | stdin: Stdin.expire(pipes.stdin, tag)}}

  def handle_message(_pipes, _message), do: :unknown

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
  def close_stdin(pipes), do: {:ok, %{pipes | stdin: Stdin.close(pipes.stdin, pipes.stdio)}}

  @doc """
  At EXIT: stdin is closed, what is left in the output pipes is read and
  logged (every process is gone, so it is the end), then the last
  partial lines.
  """
  @spec finish(t()) :: t()
  def finish(pipes) do
    {_, pipes} = close_stdin(pipes)
    {output, error} = Stdio.drain(pipes.stdio, pipes.output, &Output.handle(&3, &1, &2))
    if error, do: Logger.error(error)
    %{pipes | stdio: nil, output: Output.flush(output)}
  end

  @doc "Close everything without reading more (the port binary died)."
  @spec close(t()) :: t()
  def close(pipes) do
    {_, pipes} = close_stdin(pipes)
    Stdio.close(pipes.stdio)
    %{pipes | stdio: nil}
  end

  # Before the hand-over, a notice means the port binary connected.
  defp on_notice(%{stdio: %Stdio{handed_over: false}} = pipes, _stream), do: all(pipes)
  defp on_notice(pipes, nil), do: pipes
  defp on_notice(pipes, :stdin), do: feed(pipes)
  defp on_notice(pipes, stream), do: read(pipes, stream)

  # The hand-over first; once done, every stream and stdin may move.
  defp all(pipes) do
    case Stdio.handover(pipes.stdio) do
      {:ok, stdio} ->
        pipes = %{pipes | stdio: stdio}
        pipes = Enum.reduce(Output.streams(pipes.output), pipes, &read(&2, &1))
        feed(pipes)

      {:wait, stdio} ->
        %{pipes | stdio: stdio}

      {:error, message, _stdio} ->
        Logger.error(message)
        close(pipes)
    end
  end

  defp feed(%{stdin: %Stdin{}, stdio: %Stdio{}} = pipes) do
    {stdin, stdio} = Stdin.feed(pipes.stdin, pipes.stdio)
    %{pipes | stdin: stdin, stdio: stdio}
  end

  defp feed(pipes), do: pipes

  # One read of a pipe per message handled, so calls are served between
  # reads; a daemon that cannot keep up pauses its command (the pipe
  # fills) instead of growing its mailbox or heap.
  defp read(%{stdio: nil} = pipes, _stream), do: pipes

  defp read(pipes, stream) do
    case Stdio.next(pipes.stdio, stream) do
      {:data, data, stdio} ->
        send(self(), {:muontrap_read, stdio.resource, stream})
        %{pipes | stdio: stdio, output: Output.handle(pipes.output, stream, data)}

      # At EOF the other stream may still have output; all is closed at EXIT.
      {wait_or_eof, stdio} when wait_or_eof in [:wait, :eof] ->
        %{pipes | stdio: stdio}

      {:error, message, _stdio} ->
        Logger.error(message)
        close(pipes)
    end
  end
end
