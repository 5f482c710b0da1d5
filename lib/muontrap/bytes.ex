defmodule MuonTrap.Bytes do
  @moduledoc false
  # Whether a binary holds a byte, without `:binary.match/2`'s cost on
  # short binaries: on OTP 25, matching a one-byte pattern that is absent
  # from a subject of 1 to 7 bytes charges the caller a whole reduction
  # budget (4,000), so it is scheduled out. A command's name ("true") and
  # its short arguments are checked for NUL and "/" on every start
  # (docs/performance.md, round 15).

  # Subjects this short are scanned here; longer ones go to :binary.match/2.
  @scan_below 8

  @doc "Whether `binary` contains `byte`."
  @spec member?(binary(), byte()) :: boolean()
  def member?(binary, byte) when byte_size(binary) < @scan_below, do: scan(binary, byte)
  def member?(binary, byte), do: :binary.match(binary, <<byte>>) != :nomatch

  @doc """
  `binary` split at every `byte` (`:binary.split/3` with `[:global]`),
  without the call when the byte is not there.
  """
  @spec split(binary(), byte()) :: [binary()]
  def split(binary, byte) do
    if member?(binary, byte), do: :binary.split(binary, <<byte>>, [:global]), else: [binary]
  end

  defp scan(<<byte, _::binary>>, byte), do: true
  defp scan(<<_, rest::binary>>, byte), do: scan(rest, byte)
  defp scan(<<>>, _byte), do: false
end
