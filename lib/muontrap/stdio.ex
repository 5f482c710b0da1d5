defmodule MuonTrap.Stdio do
  @moduledoc """
  A command's output pipe, owned by the calling process.

  The one stdio path of `MuonTrap.cmd/3` and `MuonTrap.Daemon`: the NIF
  creates a pipe and a listening socket, the port binary (started with the
  `--handover` arguments) connects, and the NIF hands it the pipe's write
  end with `SCM_RIGHTS`, after checking that the peer's pid is the port's.
  The command then writes straight into the pipe and the owner pulls with
  `next/1`: no process relays the bytes, and the pipe's capacity is the
  flow-control window. See `docs/protocol.md`, "Descriptor hand-over".

  Everything is closed when the owner calls `close/1` or dies.

  `next/1` never blocks: `:wait` means a `{:select, resource, ref,
  :ready_input}` message will come (match it with `message?/2`), after
  which `next/1` is called again.
  """

  alias MuonTrap.Nif

  # The most a read at a timeout takes, to collect everything still queued.
  @max_read 1_048_576

  # How long the pipe is read after the port's EXIT. Every process of the
  # command is gone by then, so what is left is at most one pipe's worth;
  # more can only come from something that escaped containment.
  @drain_grace 1_000

  @enforce_keys [:resource, :ref, :window]
  defstruct [:resource, :ref, :window, port_pid: nil, handed_over: false]

  @typedoc "The owner's side of a command's output pipe."
  @type t :: %__MODULE__{
          resource: reference(),
          ref: reference(),
          window: pos_integer(),
          port_pid: non_neg_integer() | nil,
          handed_over: boolean()
        }

  @doc """
  Create the pipe, of about `window` bytes, and the socket the port binary
  receives its write end through. Returns the stdio and the arguments that
  tell the port binary where to connect.

  Raises `MuonTrap.Error` if the descriptors cannot be created (for
  example when the BEAM is out of file descriptors).
  """
  @spec open(pos_integer()) :: {t(), [String.t()]}
  def open(window) do
    case Nif.stdio_open(window, true) do
      {resource, name} when is_binary(name) ->
        {%__MODULE__{resource: resource, ref: make_ref(), window: window}, ["--handover", name]}

      {:error, reason} ->
        raise MuonTrap.Error,
          message:
            "muontrap: cannot create the command's output pipe: #{:file.format_error(reason)}"
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

  @doc """
  Take the next step: hand the descriptors over if the port binary has
  connected, then read at most the window's worth of output.
  """
  @spec next(t()) ::
          {:data, binary(), t()} | {:wait, t()} | {:eof, t()} | {:error, String.t(), t()}
  def next(%__MODULE__{handed_over: false, port_pid: nil} = stdio), do: {:wait, stdio}

  def next(%__MODULE__{handed_over: false} = stdio) do
    case Nif.stdio_handover(stdio.resource, stdio.port_pid, stdio.ref) do
      :ok ->
        next(%{stdio | handed_over: true})

      :wait ->
        {:wait, stdio}

      {:error, reason} ->
        {:error, "muontrap: cannot hand the output pipe to the port binary: #{inspect(reason)}",
         stdio}
    end
  end

  def next(stdio), do: read(stdio, stdio.window)

  @doc """
  Read whatever the pipe holds now, without waiting: at a timeout, what
  the command wrote before it is collected and nothing after.
  """
  @spec read_queued(t()) :: binary()
  def read_queued(%__MODULE__{handed_over: false}), do: ""

  def read_queued(stdio) do
    case read(stdio, @max_read) do
      {:data, data, _stdio} -> data
      _wait_eof_or_error -> ""
    end
  end

  defp read(stdio, max) do
    case Nif.stdio_read(stdio.resource, max, stdio.ref) do
      data when is_binary(data) ->
        {:data, data, stdio}

      :wait ->
        {:wait, stdio}

      :eof ->
        {:eof, stdio}

      {:error, reason} ->
        {:error, "muontrap: reading the command's output failed: #{inspect(reason)}", stdio}
    end
  end

  @doc """
  After the port's EXIT: read the pipe to EOF, handing each chunk to `fun`,
  for at most a second (something outside the containment may still hold
  the pipe), then close it. Returns the accumulator and an error message
  if reading failed.
  """
  @spec drain(t() | nil, acc, (binary(), acc -> acc)) :: {acc, String.t() | nil}
        when acc: term()
  def drain(stdio, acc, fun) do
    deadline = System.monotonic_time(:millisecond) + @drain_grace
    drain(stdio, acc, fun, deadline)
  end

  defp drain(nil, acc, _fun, _deadline), do: {acc, nil}

  # Never handed over: nothing can write into the pipe.
  defp drain(%__MODULE__{handed_over: false} = stdio, acc, _fun, _deadline) do
    close(stdio)
    {acc, nil}
  end

  defp drain(stdio, acc, fun, deadline) do
    %__MODULE__{resource: res, ref: ref} = stdio
    left = deadline - System.monotonic_time(:millisecond)

    case if(left > 0, do: next(stdio), else: {:eof, stdio}) do
      {:data, data, stdio} ->
        drain(stdio, fun.(data, acc), fun, deadline)

      {:wait, stdio} ->
        receive do
          {:select, ^res, ^ref, :ready_input} -> drain(stdio, acc, fun, deadline)
        after
          left -> drain(stdio, acc, fun, deadline)
        end

      {:eof, stdio} ->
        close(stdio)
        {acc, nil}

      {:error, message, stdio} ->
        close(stdio)
        {acc, message}
    end
  end

  @doc "True if `message` is this stdio's select notification."
  @spec message?(t(), term()) :: boolean()
  def message?(%__MODULE__{resource: res, ref: ref}, {:select, res, ref, :ready_input}), do: true
  def message?(_stdio, _message), do: false

  @doc """
  Close every descriptor and drop a select notification already in the
  mailbox. Idempotent.
  """
  @spec close(t() | nil) :: :ok
  def close(nil), do: :ok

  def close(%__MODULE__{resource: res, ref: ref}) do
    Nif.stdio_close(res)

    receive do
      {:select, ^res, ^ref, _} -> :ok
    after
      0 -> :ok
    end
  end
end
