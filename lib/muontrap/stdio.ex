defmodule MuonTrap.Stdio do
  @moduledoc false
  # A command as its owner holds it: its pipes and its channel.
  #
  # The one stdio path of `MuonTrap.cmd/3`, `MuonTrap.stream!/3` and
  # `MuonTrap.Daemon`: the NIF creates a pipe for each stream asked for
  # (`:output`, the captured stdout or merged stream; `:stderr`, a separate
  # stderr; `:stdin`, the command's input); `request!/2` makes the
  # command's channel and has the resident spawner fork the command's
  # supervisor on its other end, and `hand_over!/2` puts the command and
  # the pipes' other ends on it (SCM_RIGHTS) (docs/protocol.md,
  # "Transport"). The command then reads and writes the pipes
  # directly: no process relays the bytes, and each
  # pipe's capacity is its flow-control window. The supervisor's frames
  # come on the channel (`recv/1`).
  #
  # Everything is closed when the owner calls `close/1` or dies (the
  # supervisor then stops the command), unless an heir was named
  # (`MuonTrap.PortReaper`).
  #
  # Nothing here blocks: `:wait` means a `{:select, resource, ref, mode}`
  # message will come (`stream_of/2` says which stream it is about, or
  # `:channel`), after which the call is made again.

  alias MuonTrap.Nif

  # What a read at a timeout asks for, to collect everything still queued:
  # no pipe is larger (MAX_PIPE in native/muontrap_nif/src/pipe.rs), and
  # the NIF reads no more than is queued.
  @max_read 1_048_576

  # How long a start waits, at most, while the spawner is busy (too many
  # descriptors in flight), before it gives up.
  @busy_wait 30_000

  # How many times a start asks for a new supervisor when the last one was
  # gone before the hand-over (each time a spawner was SIGKILLed with the
  # request in its socket).
  @retries 3

  @enforce_keys [:resource, :ref, :window, :refs]
  defstruct [:resource, :ref, :window, :refs, notice: nil]

  @typedoc "A stream of the command: its captured output, a separate stderr, its stdin."
  @type stream :: :output | :stderr | :stdin

  @typedoc "The owner's side of a command's pipes and channel."
  @type t :: %__MODULE__{
          resource: reference(),
          ref: reference(),
          window: pos_integer(),
          refs: %{optional(stream()) => reference()},
          notice: pos_integer() | nil
        }

  @doc """
  Create a pipe of about `window` bytes for each of `streams`, with a
  duplicate of each of a daemon's `listeners` (`MuonTrap.Daemon.Listeners`)
  after them, for the supervisor `request!/2` starts.

  Raises `MuonTrap.Error` if the descriptors cannot be created (for
  example when the BEAM is out of file descriptors).
  """
  @spec open(pos_integer(), [stream()], reference() | nil) :: t()
  def open(window, streams \\ [:output], listeners \\ nil) do
    case Nif.stdio_open(window, streams, listeners) do
      {:error, reason} ->
        raise MuonTrap.Error,
          message: "muontrap: cannot create the command's pipes: #{:file.format_error(reason)}"

      resource ->
        refs = Map.new(streams, &{&1, make_ref()})
        %__MODULE__{resource: resource, ref: make_ref(), window: window, refs: refs}
    end
  end

  @doc """
  Make the command's channel and have the spawner fork its supervisor
  on the other end, before the command is built: the fork and the
  supervisor's start overlap with that work. `hand_over!/2` follows.
  Returns at once. While too many descriptors are in flight, waits for
  them to land. Raises `MuonTrap.Error` if the supervisor cannot be
  started.
  """
  @spec request!(t(), String.t()) :: t()
  def request!(stdio, path), do: request(stdio, path, busy_deadline(), 1, 0)

  defp request(stdio, path, deadline, wait, starts) do
    case Nif.stdio_spawn(stdio.resource) do
      :ok ->
        stdio

      {:error, :no_spawner} when starts < 3 ->
        # Started on a dirty scheduler, once, whoever asks first.
        case Nif.spawner_start(path) do
          {:ok, _pid} -> request(stdio, path, deadline, wait, starts + 1)
          {:error, message} -> raise MuonTrap.Error, message: message
        end

      {:error, :no_spawner} ->
        raise MuonTrap.Error, message: "muontrap: the spawner exits as soon as it starts"

      {:error, :busy} ->
        busy_wait(deadline, wait)
        request(stdio, path, deadline, min(wait * 2, 50), starts)

      {:error, reason} ->
        raise MuonTrap.Error, message: cannot_start(reason)
    end
  end

  @doc """
  Hand the supervisor `request!/2` started the command
  (`MuonTrap.PortBinary.command/2`) and the pipes' other ends, and watch
  the output pipes: a `:ready_input` notice comes for each once it has
  data or ends. With `notice` true, the command's end is announced by
  `{:muontrap_ended, id}` when an end notice can be arranged
  (`MuonTrap.Notices`): `id` is then the stdio's `:notice`, and its output
  pipes do not end before it is closed (every process that could write
  to them is gone by EXIT). Returns at once; the supervisor's frames
  follow (`recv/1`). While too many descriptors are in flight, waits for
  them to land. A supervisor gone before the hand-over reached it (its
  request died with a SIGKILLed spawner) ran nothing: the command is
  asked for again (`request!/2` with `path`), up to #{@retries} times.
  Raises `MuonTrap.Error` if the command cannot be handed over.
  """
  @spec hand_over!(t(), map(), Path.t(), boolean()) :: t()
  def hand_over!(stdio, command, path, notice \\ false) do
    case Nif.stdio_command(stdio.resource, command) do
      :ok -> hand_over(stdio, path, notice, busy_deadline(), 1, @retries)
      {:error, reason} -> raise MuonTrap.Error, message: cannot_start(reason)
    end
  end

  defp hand_over(stdio, path, notice, deadline, wait, retries) do
    case Nif.stdio_hand_over(stdio.resource, watched(stdio), notice) do
      :ok ->
        # No dispatcher attached to take a notice: have one.
        if notice, do: MuonTrap.Notices.ensure()
        stdio

      {:ok, id} ->
        %{stdio | notice: id}

      {:error, :busy} ->
        busy_wait(deadline, wait)
        hand_over(stdio, path, notice, deadline, min(wait * 2, 50), retries)

      {:error, :gone} when retries > 0 ->
        stdio |> request!(path) |> hand_over(path, notice, deadline, wait, retries - 1)

      {:error, :gone} ->
        raise MuonTrap.Error, message: cannot_start(:gone)

      {:error, reason} ->
        raise MuonTrap.Error, message: cannot_start(reason)
    end
  end

  # The output pipes, selected at the hand-over: they are empty then.
  defp watched(%__MODULE__{refs: refs}),
    do: for({stream, ref} <- refs, stream != :stdin, do: {stream, ref})

  defp busy_deadline, do: System.monotonic_time(:millisecond) + @busy_wait

  defp busy_wait(deadline, wait) do
    if System.monotonic_time(:millisecond) > deadline,
      do: raise(MuonTrap.Error, message: cannot_start(:busy))

    Process.sleep(wait)
  end

  defp cannot_start(message) when is_binary(message), do: message

  defp cannot_start(:closed), do: "muontrap: cannot start the command: its stdio is closed"

  defp cannot_start(:gone),
    do:
      "muontrap: cannot start the command: its supervisor was gone #{@retries + 1} times in a row"

  defp cannot_start(:busy),
    do: "muontrap: cannot start the command: too many descriptors in flight for too long"

  defp cannot_start(reason) when is_atom(reason),
    do: "muontrap: cannot start the command: #{:file.format_error(reason)}"

  defp cannot_start(reason), do: "muontrap: cannot start the command: #{inspect(reason)}"

  @doc """
  The supervisor's frames so far, decoded (`MuonTrap.Protocol.message()`,
  and `{:supervisor, os_pid}`), and `:wait` (a `:channel` notice comes
  with more), `:eof` (the supervisor is gone) or `:exited` (EXIT came:
  nothing more will, and the channel is not watched).
  """
  @spec recv(t()) :: {[term()], :wait | :eof | :exited}
  def recv(stdio), do: Nif.stdio_recv(stdio.resource, stdio.ref)

  @doc "Send a request frame (`MuonTrap.Protocol`) to the supervisor."
  @spec send_frame(t() | reference(), binary()) :: :ok | {:error, term()}
  def send_frame(%__MODULE__{resource: res}, frame), do: Nif.stdio_send(res, frame)
  def send_frame(res, frame) when is_reference(res), do: Nif.stdio_send(res, frame)

  @doc "The streams this stdio has pipes for."
  @spec streams(t()) :: [stream()]
  def streams(%__MODULE__{refs: refs}), do: Map.keys(refs)

  @doc """
  Which stream a message is a select notice for (`:channel` for the
  channel), or `nil` if it is none of this stdio's.
  """
  @spec stream_of(t(), term()) :: stream() | :channel | nil
  def stream_of(%__MODULE__{resource: res, ref: ref}, {:select, res, ref, _mode}), do: :channel

  def stream_of(%__MODULE__{resource: res, refs: refs}, {:select, res, ref, mode})
      when mode in [:ready_input, :ready_output] do
    Enum.find_value(refs, fn {stream, r} -> if r == ref, do: stream end)
  end

  def stream_of(_stdio, _message), do: nil

  @doc "Read at most the window's worth of `stream` (`:output` or `:stderr`)."
  @spec next(t(), :output | :stderr) ::
          {:data, binary(), t()} | {:wait, t()} | {:eof, t()} | {:error, String.t(), t()}
  def next(stdio, stream \\ :output), do: read(stdio, stream, stdio.window)

  @doc """
  `next/2` once nothing can write to `stream` any more (EXIT came with an
  end notice): an empty pipe is at its end, and is not watched.
  """
  @spec next_after_end(t(), :output | :stderr) ::
          {:data, binary(), t()} | {:eof, t()} | {:error, String.t(), t()}
  def next_after_end(stdio, stream), do: read(stdio, stream, stdio.window, nil)

  @doc """
  Write what fits of `data` into the command's stdin: `{:ok, bytes_written, stdio}`,
  `{:wait, stdio}` while the pipe is full (a `:ready_output` notice comes),
  or `{:error, reason, stdio}`, where `:epipe` means nothing reads the
  command's stdin any more and `:closed` that `close_stdin/1` was called.
  """
  @spec write(t(), binary()) ::
          {:ok, non_neg_integer(), t()} | {:wait, t()} | {:error, atom() | String.t(), t()}
  def write(stdio, data) do
    case Nif.stdio_write(stdio.resource, data, Map.fetch!(stdio.refs, :stdin)) do
      n when is_integer(n) -> {:ok, n, stdio}
      :wait -> {:wait, stdio}
      {:error, reason} -> {:error, reason, stdio}
    end
  end

  @doc "Close the command's stdin, so that it reads EOF. Idempotent."
  @spec close_stdin(t()) :: :ok
  def close_stdin(%__MODULE__{resource: res, refs: %{stdin: ref}}) do
    Nif.stdio_close_stdin(res)

    receive do
      {:select, ^res, ^ref, _} -> :ok
    after
      0 -> :ok
    end
  end

  def close_stdin(_stdio), do: :ok

  @doc """
  Read whatever `stream`'s pipe holds now, without waiting: at a timeout,
  what the command wrote before it is collected and nothing after.
  """
  @spec read_queued(t(), :output | :stderr) :: binary()
  def read_queued(stdio, stream \\ :output) do
    case read(stdio, stream, @max_read) do
      {:data, data, _stdio} -> data
      _wait_eof_or_error -> ""
    end
  end

  defp read(stdio, stream, max, ref \\ :watch) do
    ref = if ref == :watch, do: Map.fetch!(stdio.refs, stream), else: ref

    case Nif.stdio_read(stdio.resource, stream, max, ref) do
      data when is_binary(data) ->
        {:data, data, stdio}

      :wait ->
        {:wait, stdio}

      :eof ->
        {:eof, stdio}

      {:error, reason} ->
        {:error, "muontrap: reading the command's #{stream} failed: #{inspect(reason)}", stdio}
    end
  end

  @doc """
  Close every descriptor and drop select notices already in the mailbox.
  Idempotent.
  """
  @spec close(t() | nil) :: :ok
  def close(nil), do: :ok

  def close(%__MODULE__{resource: res, refs: refs, ref: ref} = stdio) do
    Nif.stdio_close(res)
    Enum.each([ref | Map.values(refs)], &flush_select(res, &1))
    flush_notice(stdio)
  end

  @doc """
  Drop select notices already in the mailbox, closing nothing: for a
  command given to another process (`MuonTrap.PortReaper.release/2`).
  """
  @spec forget(t()) :: :ok
  def forget(%__MODULE__{resource: res, refs: refs, ref: ref} = stdio) do
    Enum.each([ref | Map.values(refs)], &flush_select(res, &1))
    flush_notice(stdio)
  end

  # The NIF sends an end notice only while the command is its owner's
  # (native/muontrap_nif/src/notices.rs): after the close or the hand-off,
  # one already sent is in the mailbox, or none comes.
  defp flush_notice(%__MODULE__{notice: nil}), do: :ok

  defp flush_notice(%__MODULE__{notice: id}) do
    receive do
      {:muontrap_ended, ^id} -> :ok
    after
      0 -> :ok
    end
  end

  defp flush_select(res, ref) do
    receive do
      {:select, ^res, ^ref, _} -> :ok
    after
      0 -> :ok
    end
  end
end
