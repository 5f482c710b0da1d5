defmodule MuonTrap.Protocol do
  @moduledoc false
  # The framed wire protocol spoken with the supervisor (started by the library).
  #
  # Frames are length-prefixed by the port itself (`{:packet, 4}`), so this
  # module only deals with the tag byte and the body. The protocol carries
  # control only: output goes into a pipe the BEAM owns (`MuonTrap.Stdio`).
  # See `docs/protocol.md`.
  #
  # The tags and bodies are defined once, in Rust (`native/muontrap_wire`,
  # module `frame`), which the supervisor encodes with; this module decodes
  # and encodes through the NIF, so it holds no tag number of its own.

  alias MuonTrap.Nif

  @typedoc "A decoded message from the supervisor."
  @type message ::
          {:started, non_neg_integer()}
          | {:exit, non_neg_integer()}
          | {:error, String.t()}
          | {:exec_error, atom() | non_neg_integer()}
          | {:notify, [{String.t(), String.t()}]}
          | {:watchdog, :expired | :triggered}
          | {:signaled, :ok | :not_running | :refused}

  @doc """
  Decode one frame received from the supervisor. A failed exec's errno
  comes as its POSIX atom (`:enoent`), or as the number for one without.

      iex> MuonTrap.Protocol.decode(<<3, 0, 0, 1, 0>>)
      {:started, 256}
      iex> MuonTrap.Protocol.decode(<<4, 0, 0, 0, 3>>)
      {:exit, 3}
      iex> MuonTrap.Protocol.decode(<<8, "READY=1\\nSTATUS=up">>)
      {:notify, [{"READY", "1"}, {"STATUS", "up"}]}
      iex> MuonTrap.Protocol.decode(<<10, 1>>)
      {:signaled, :not_running}
  """
  @spec decode(binary()) :: message()
  def decode(frame) do
    case Nif.frame_decode(frame) do
      :bad_frame ->
        raise ArgumentError,
              "unexpected frame from the muontrap port: #{inspect(frame, limit: 16)}"

      message ->
        message
    end
  end

  @doc "Encode a request to terminate the command (SIGTERM, then SIGKILL)."
  @spec terminate() :: binary()
  def terminate, do: Nif.frame_terminate()

  @doc """
  Encode a request to send signal `number` to the command's main process;
  the port answers with one SIGNALED frame.

      iex> MuonTrap.Protocol.signal(1)
      <<5, 0, 0, 0, 1>>
  """
  @spec signal(pos_integer()) :: binary()
  def signal(number), do: Nif.frame_signal(number)
end
