defmodule MuonTrap.Protocol do
  @moduledoc """
  The framed wire protocol spoken with the port binary (`--framed`).

  Frames are length-prefixed by the port itself (`{:packet, 4}`), so this
  module only deals with the tag byte and the body. The protocol carries
  control only: output goes into a pipe the BEAM owns (`MuonTrap.Stdio`).
  See `docs/protocol.md`.
  """

  # Port -> Erlang (tags 1 and 2, DATA and DATA_STDERR, are retired)
  @started 3
  @exit 4
  @error 5
  @ready 6
  @exec_error 7

  # Erlang -> port (tag 1, ACK, is retired)
  @terminate 4

  @typedoc "A decoded message from the port binary."
  @type message ::
          {:started, non_neg_integer()}
          | {:exit, non_neg_integer()}
          | {:error, String.t()}
          | {:exec_error, non_neg_integer()}
          | :ready

  @doc """
  Decode one frame received from the port binary.

      iex> MuonTrap.Protocol.decode(<<3, 0, 0, 1, 0>>)
      {:started, 256}
      iex> MuonTrap.Protocol.decode(<<4, 0, 0, 0, 3>>)
      {:exit, 3}
  """
  @spec decode(binary()) :: message()
  def decode(<<@started, pid::32>>), do: {:started, pid}
  def decode(<<@exit, status::32>>), do: {:exit, status}
  def decode(<<@error, message::binary>>), do: {:error, message}
  def decode(<<@ready>>), do: :ready
  def decode(<<@exec_error, errno::32>>), do: {:exec_error, errno}

  def decode(other) do
    raise ArgumentError, "unexpected frame from the muontrap port: #{inspect(other, limit: 16)}"
  end

  @doc "Encode a request to terminate the command (SIGTERM, then SIGKILL)."
  @spec terminate() :: binary()
  def terminate, do: <<@terminate>>
end
