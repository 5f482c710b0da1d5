defmodule MuonTrap.Protocol do
  @moduledoc """
  The framed wire protocol spoken with the port binary (`--framed`).

  Frames are length-prefixed by the port itself (`{:packet, 4}`), so this
  module only deals with the tag byte and the body. The protocol carries
  control only: output goes into a pipe the BEAM owns (`MuonTrap.Stdio`).
  See `docs/protocol.md`.
  """

  # Port -> Erlang (tags 1, 2 and 6, DATA, DATA_STDERR and READY, are retired)
  @started 3
  @exit 4
  @error 5
  @exec_error 7
  @notify 8
  @watchdog 9
  @signaled 10

  # Erlang -> port (tags 1, ACK, and 2 and 3, reserved for stdin bytes, are retired)
  @terminate 4
  @signal 5

  @typedoc "A decoded message from the port binary."
  @type message ::
          {:started, non_neg_integer()}
          | {:exit, non_neg_integer()}
          | {:error, String.t()}
          | {:exec_error, non_neg_integer()}
          | {:notify, [{String.t(), String.t()}]}
          | {:watchdog, :expired | :triggered}
          | {:signaled, :ok | :not_running | :refused}

  @doc """
  Decode one frame received from the port binary.

      iex> MuonTrap.Protocol.decode(<<3, 0, 0, 1, 0>>)
      {:started, 256}
      iex> MuonTrap.Protocol.decode(<<4, 0, 0, 0, 3>>)
      {:exit, 3}
      iex> MuonTrap.Protocol.decode(<<8, "READY=1\\nSTATUS=up">>)
      {:notify, [{"READY", "1"}, {"STATUS", "up"}]}
  """
  @spec decode(binary()) :: message()
  def decode(<<@started, pid::32>>), do: {:started, pid}
  def decode(<<@exit, status::32>>), do: {:exit, status}
  def decode(<<@error, message::binary>>), do: {:error, message}
  def decode(<<@exec_error, errno::32>>), do: {:exec_error, errno}
  def decode(<<@notify, body::binary>>), do: {:notify, assignments(body)}
  def decode(<<@watchdog, 1>>), do: {:watchdog, :expired}
  def decode(<<@watchdog, 2>>), do: {:watchdog, :triggered}
  def decode(<<@signaled, 0>>), do: {:signaled, :ok}
  def decode(<<@signaled, 1>>), do: {:signaled, :not_running}
  def decode(<<@signaled, 2>>), do: {:signaled, :refused}

  def decode(other) do
    raise ArgumentError, "unexpected frame from the muontrap port: #{inspect(other, limit: 16)}"
  end

  # The port sends only well-formed KEY=VALUE lines (docs/protocol.md).
  defp assignments(body) do
    for line <- :binary.split(body, "\n", [:global]),
        [key, value] <- [:binary.split(line, "=")],
        do: {key, value}
  end

  @doc "Encode a request to terminate the command (SIGTERM, then SIGKILL)."
  @spec terminate() :: binary()
  def terminate, do: <<@terminate>>

  @doc """
  Encode a request to send signal `number` to the command's main process;
  the port answers with one SIGNALED frame.

      iex> MuonTrap.Protocol.signal(1)
      <<5, 0, 0, 0, 1>>
  """
  @spec signal(pos_integer()) :: binary()
  def signal(number), do: <<@signal, number::32>>
end
