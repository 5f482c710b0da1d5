defmodule MuonTrap.Daemon.Stdin do
  @moduledoc """
  A daemon's stdin with `stdin: :pipe`: writes queue in order and each
  caller is answered once all its bytes are in the pipe (`:ok`), at its
  timeout (`{:error, :timeout}`, a prefix of it may have been written),
  or when stdin closes first (`{:error, :closed}`). Writing never blocks
  the daemon: a full pipe is waited for with a select notice, while the
  daemon goes on reading output and answering calls.
  """

  alias MuonTrap.Stdio

  # Writes per message handled, so a command that reads as fast as it is
  # fed cannot keep the daemon from its other messages.
  @writes_per_turn 8

  defstruct queue: :queue.new(), open?: true

  @typedoc "Queued writes `{tag, from, data, timer}`, and whether stdin is still open."
  @type t :: %__MODULE__{queue: :queue.queue(), open?: boolean()}

  @doc "An open stdin with nothing queued."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc "True if writes are still taken."
  @spec open?(t()) :: boolean()
  def open?(%__MODULE__{open?: open?}), do: open?

  @doc """
  Queue `data` for the caller `from`, to be answered within `timeout`
  milliseconds (or `:infinity`).
  """
  @spec enqueue(t(), GenServer.from(), binary(), timeout()) :: t()
  def enqueue(stdin, from, data, timeout) do
    tag = make_ref()

    timer =
      if timeout != :infinity,
        do: Process.send_after(self(), {:muontrap_write_timeout, tag}, timeout)

    %{stdin | queue: :queue.in({tag, from, data, timer}, stdin.queue)}
  end

  @doc """
  Write as much of the queue as fits now. Returns the stdin and the
  stdio; a notice or a `{:muontrap_write, resource}` message says when to
  call again. A command that no longer reads its stdin closes it.
  """
  @spec feed(t(), Stdio.t() | nil) :: {t(), Stdio.t() | nil}
  def feed(stdin, stdio), do: feed(stdin, stdio, @writes_per_turn)

  defp feed(stdin, nil, _turns), do: {stdin, nil}

  defp feed(stdin, stdio, 0) do
    send(self(), {:muontrap_write, stdio.resource})
    {stdin, stdio}
  end

  defp feed(stdin, stdio, turns) do
    case :queue.out(stdin.queue) do
      {:empty, _} ->
        {stdin, stdio}

      {{:value, {tag, from, data, timer} = entry}, rest} ->
        case Stdio.write(stdio, data) do
          {:ok, n, stdio} when n == byte_size(data) ->
            answer(entry, :ok)
            feed(%{stdin | queue: rest}, stdio, turns - 1)

          {:ok, n, stdio} ->
            left = binary_part(data, n, byte_size(data) - n)
            queue = :queue.in_r({tag, from, left, timer}, rest)
            feed(%{stdin | queue: queue}, stdio, turns - 1)

          {:wait, stdio} ->
            {stdin, stdio}

          {:error, _epipe_or_closed, stdio} ->
            {close(stdin, stdio), stdio}
        end
    end
  end

  @doc "Answer the write `tag` with `{:error, :timeout}` if it is still queued."
  @spec expire(t(), reference()) :: t()
  def expire(stdin, tag) do
    {expired, kept} = Enum.split_with(:queue.to_list(stdin.queue), &(elem(&1, 0) == tag))
    Enum.each(expired, &answer(&1, {:error, :timeout}))
    %{stdin | queue: :queue.from_list(kept)}
  end

  @doc """
  Close stdin (the command reads EOF) and answer every queued write with
  `{:error, :closed}`. Idempotent.
  """
  @spec close(t(), Stdio.t() | nil) :: t()
  def close(stdin, stdio) do
    Enum.each(:queue.to_list(stdin.queue), &answer(&1, {:error, :closed}))
    if stdio, do: Stdio.close_stdin(stdio)
    %__MODULE__{open?: false}
  end

  defp answer({_tag, from, _data, timer}, reply) do
    _ = if timer, do: Process.cancel_timer(timer)
    GenServer.reply(from, reply)
  end
end
