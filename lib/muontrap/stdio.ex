defmodule MuonTrap.Stdio do
  @moduledoc false
  # A command's pipes, owned by the calling process.
  #
  # The one stdio path of `MuonTrap.cmd/3`, `MuonTrap.stream!/3` and
  # `MuonTrap.Daemon`: the NIF creates a pipe for each stream asked for
  # (`:output`, the captured stdout or merged stream; `:stderr`, a separate
  # stderr; `:stdin`, the command's input) and a listening socket; the port
  # binary (started with `--beam` and the socket's name) connects, and the
  # NIF hands it the command (`command!/2`) and the other ends with
  # `SCM_RIGHTS`, after checking that the peer's pid is the port's. The command then reads and writes the pipes
  # directly: no process relays the bytes, and each pipe's capacity is its
  # flow-control window. See `docs/protocol.md`, "Descriptor hand-over".
  #
  # Everything is closed when the owner calls `close/1` or dies.
  #
  # Nothing here blocks but `await_handover/3` (which `MuonTrap.PortBinary.open/3`
  # calls, for the short time from the port's start to its connection):
  # `:wait` means a `{:select, resource, ref, mode}` message will come
  # (`stream_of/2` says which stream it is about), after which the call is
  # made again.

  alias MuonTrap.Nif

  # What a read at a timeout asks for, to collect everything still queued:
  # no pipe is larger (MAX_PIPE in native/muontrap_nif/src/pipe.rs), and
  # the NIF reads no more than is queued.
  @max_read 1_048_576

  @enforce_keys [:resource, :ref, :window, :refs]
  defstruct [:resource, :ref, :window, :refs, name: nil, port_pid: nil, handed_over: false]

  @typedoc "A stream of the command: its captured output, a separate stderr, its stdin."
  @type stream :: :output | :stderr | :stdin

  @typedoc "The owner's side of a command's pipes."
  @type t :: %__MODULE__{
          resource: reference(),
          ref: reference(),
          window: pos_integer(),
          refs: %{optional(stream()) => reference()},
          name: String.t() | nil,
          port_pid: non_neg_integer() | nil,
          handed_over: boolean()
        }

  @typedoc "What `MuonTrap.PortBinary.open/3` needs to start the port binary on this stdio."
  @opaque handover :: {:handover, t()}

  @doc """
  Create a pipe of about `window` bytes for each of `streams`, and the
  socket the port binary receives the other ends through, with a
  duplicate of each of a daemon's `listeners` (`MuonTrap.Daemon.Listeners`)
  after them. Returns the stdio, and the hand-over to open the port
  binary with (`MuonTrap.PortBinary.open/3`).

  Raises `MuonTrap.Error` if the descriptors cannot be created (for
  example when the BEAM is out of file descriptors).
  """
  @spec open(pos_integer(), [stream()], reference() | nil) :: {t(), handover()}
  def open(window, streams \\ [:output], listeners \\ nil) do
    case Nif.stdio_open(window, streams, listeners) do
      {resource, name} when is_binary(name) ->
        refs = Map.new(streams, &{&1, make_ref()})
        # The first stream's ref also serves the hand-over, which comes
        # before anything can move on it.
        ref = if streams == [], do: make_ref(), else: Map.fetch!(refs, hd(streams))

        stdio = %__MODULE__{resource: resource, ref: ref, window: window, refs: refs, name: name}
        {stdio, {:handover, stdio}}

      {:error, reason} ->
        raise MuonTrap.Error,
          message: "muontrap: cannot create the command's pipes: #{:file.format_error(reason)}"
    end
  end

  @doc """
  Give the NIF the command (`MuonTrap.PortBinary.command/2`) that the port
  binary receives with the descriptors; returns the stdio.
  """
  @spec command!(handover(), map()) :: t()
  def command!({:handover, stdio}, command) do
    case Nif.stdio_command(stdio.resource, command) do
      :ok ->
        stdio

      {:error, reason} ->
        raise MuonTrap.Error,
          message: "muontrap: cannot hand the command to the port binary: #{inspect(reason)}"
    end
  end

  @doc """
  Attach `port` and wait until it has its command and descriptors, or
  has exited before connecting (checked every `poll` ms). Returns what
  `handover/1` did last. Once it has, `handover/1` returns `{:ok, stdio}`
  at once for any copy of the stdio.
  """
  @spec await_handover(t(), port(), pos_integer()) ::
          {:ok, t()} | {:wait, t()} | {:error, String.t(), t()}
  def await_handover(stdio, port, poll) do
    stdio = attach(stdio, port)
    %__MODULE__{resource: res, ref: ref} = stdio

    case handover(stdio) do
      {:wait, %__MODULE__{port_pid: pid} = stdio} when pid != nil ->
        receive do
          {:select, ^res, ^ref, _} -> await_handover(stdio, port, poll)
        after
          poll ->
            if Port.info(port) == nil,
              do: {:wait, stdio},
              else: await_handover(stdio, port, poll)
        end

      done ->
        done
    end
  end

  @doc """
  Note the port binary that may receive the descriptors: only a peer
  with its OS pid is served. A port that has already exited has no pid;
  `next/1` then waits for nothing and the owner sees the port's exit.
  """
  @spec attach(t(), port()) :: t()
  def attach(stdio, port) do
    case Port.info(port, :os_pid) do
      {:os_pid, pid} -> %{stdio | port_pid: pid}
      nil -> stdio
    end
  end

  @doc "The streams this stdio has pipes for."
  @spec streams(t()) :: [stream()]
  def streams(%__MODULE__{refs: refs}), do: Map.keys(refs)

  @doc """
  Which stream a message is a select notice for, or `nil` if it is none
  of this stdio's. A notice that the port binary connected counts as the
  first stream's: whatever waited on it is tried again.
  """
  @spec stream_of(t(), term()) :: stream() | nil
  def stream_of(%__MODULE__{resource: res, refs: refs}, {:select, res, ref, mode})
      when mode in [:ready_input, :ready_output] do
    Enum.find_value(refs, fn {stream, r} -> if r == ref, do: stream end)
  end

  def stream_of(_stdio, _message), do: nil

  @doc """
  Take the next step for `stream` (`:output` or `:stderr`): hand the
  descriptors over if the port binary has connected, then read at most
  the window's worth.
  """
  @spec next(t(), :output | :stderr) ::
          {:data, binary(), t()} | {:wait, t()} | {:eof, t()} | {:error, String.t(), t()}
  def next(stdio, stream \\ :output) do
    case handover(stdio) do
      {:ok, stdio} -> read(stdio, stream, stdio.window)
      wait_or_error -> wait_or_error
    end
  end

  @doc """
  Write what fits of `data` into the command's stdin: `{:ok, bytes_written, stdio}`,
  `{:wait, stdio}` while the pipe is full (a `:ready_output` notice comes),
  or `{:error, reason, stdio}`, where `:epipe` means nothing reads the
  command's stdin any more and `:closed` that `close_stdin/1` was called.
  """
  @spec write(t(), binary()) ::
          {:ok, non_neg_integer(), t()} | {:wait, t()} | {:error, atom() | String.t(), t()}
  def write(stdio, data) do
    with {:ok, stdio} <- handover(stdio) do
      case Nif.stdio_write(stdio.resource, data, Map.fetch!(stdio.refs, :stdin)) do
        n when is_integer(n) -> {:ok, n, stdio}
        :wait -> {:wait, stdio}
        {:error, reason} -> {:error, reason, stdio}
      end
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
  Hand the descriptors over if the port binary has connected: `{:ok, stdio}`
  once done, `{:wait, stdio}` until it connects (a notice with the first
  stream's ref comes), or `{:error, message, stdio}`. Owners do this
  before anything else and then try every stream: `next/2` and `write/2`
  also hand over, but a hand-over done by one of them does not wake
  whatever else was waiting for it.
  """
  @spec handover(t()) :: {:ok, t()} | {:wait, t()} | {:error, String.t(), t()}
  def handover(%__MODULE__{handed_over: true} = stdio), do: {:ok, stdio}
  def handover(%__MODULE__{port_pid: nil} = stdio), do: {:wait, stdio}

  def handover(stdio) do
    case Nif.stdio_handover(stdio.resource, stdio.port_pid, stdio.ref) do
      :ok ->
        {:ok, %{stdio | handed_over: true}}

      :wait ->
        {:wait, stdio}

      {:error, reason} ->
        {:error,
         "muontrap: cannot hand the command's pipes to the port binary: #{inspect(reason)}",
         stdio}
    end
  end

  @doc """
  Read whatever `stream`'s pipe holds now, without waiting: at a timeout,
  what the command wrote before it is collected and nothing after.
  """
  @spec read_queued(t(), :output | :stderr) :: binary()
  def read_queued(stdio, stream \\ :output)
  def read_queued(%__MODULE__{handed_over: false}, _stream), do: ""

  def read_queued(stdio, stream) do
    case read(stdio, stream, @max_read) do
      {:data, data, _stdio} -> data
      _wait_eof_or_error -> ""
    end
  end

  defp read(stdio, stream, max) do
    case Nif.stdio_read(stdio.resource, stream, max, Map.fetch!(stdio.refs, stream)) do
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

  def close(%__MODULE__{resource: res, refs: refs}) do
    Nif.stdio_close(res)
    Enum.each(Map.values(refs), &flush_select(res, &1))
  end

  defp flush_select(res, ref) do
    receive do
      {:select, ^res, ^ref, _} -> :ok
    after
      0 -> :ok
    end
  end
end
