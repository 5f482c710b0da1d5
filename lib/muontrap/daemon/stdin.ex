defmodule MuonTrap.Daemon.Stdin do
  @moduledoc false
  # A daemon's stdin with `stdin: :pipe`: writes queue in order and each
  # caller is answered once all its bytes are in the pipe (`:ok`), at its
  # timeout (`{:error, :timeout}`, a prefix of it may have been written),
  # or when stdin closes first (`{:error, :closed}`). Writing never blocks
  # the daemon: a full pipe is waited for with a select notice, while the
  # daemon goes on reading output and answering calls.

  alias MuonTrap.Engine

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
  Write as much of the queue as fits now into the command's stdin (its
  `MuonTrap.Engine`). Returns the stdin and the engine; a notice or a
  `{:muontrap_write, resource}` message says when to call again. A
  command that no longer reads its stdin closes it.
  """
  @spec feed(t(), Engine.t()) :: {t(), Engine.t()}
  def feed(stdin, engine), do: feed(stdin, engine, @writes_per_turn)

  defp feed(stdin, engine, 0) do
    send(self(), {:muontrap_write, engine.stdio.resource})
    {stdin, engine}
  end

  defp feed(stdin, engine, turns) do
    case :queue.out(stdin.queue) do
      {:empty, _} ->
        {stdin, engine}

      {{:value, {tag, from, data, timer} = entry}, rest} ->
        case Engine.write(engine, data) do
          {:ok, n, engine} when n == byte_size(data) ->
            answer(entry, :ok)
            feed(%{stdin | queue: rest}, engine, turns - 1)

          {:ok, n, engine} ->
            left = binary_part(data, n, byte_size(data) - n)
            queue = :queue.in_r({tag, from, left, timer}, rest)
            feed(%{stdin | queue: queue}, engine, turns - 1)

          {:wait, engine} ->
            {stdin, engine}

          {:error, _epipe_or_closed, engine} ->
            {close(stdin, engine), engine}
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
  @spec close(t(), Engine.t() | nil) :: t()
  def close(stdin, engine) do
    Enum.each(:queue.to_list(stdin.queue), &answer(&1, {:error, :closed}))
    if engine, do: Engine.close_stdin(engine)
    %__MODULE__{open?: false}
  end

  defp answer({_tag, from, _data, timer}, reply) do
    _ = if timer, do: Process.cancel_timer(timer)
    GenServer.reply(from, reply)
  end
end
