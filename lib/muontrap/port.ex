defmodule MuonTrap.Port do
  @moduledoc """
  Deprecated: the old name of `MuonTrap.PortBinary`, kept so that code
  written against it still compiles and runs. Every function delegates.

  Renamed because `MuonTrap.Port` read as a wrapper of Elixir's own `Port`,
  while the module opens the `muontrap` port binary.
  """

  alias MuonTrap.PortBinary

  @doc deprecated: "Use MuonTrap.PortBinary.default_window/0 instead"
  @doc "See `MuonTrap.PortBinary.default_window/0`."
  @spec default_window() :: pos_integer()
  defdelegate default_window(), to: PortBinary

  @doc deprecated: "Use MuonTrap.PortBinary.path/0 instead"
  @doc "See `MuonTrap.PortBinary.path/0`."
  @spec path() :: String.t()
  defdelegate path(), to: PortBinary

  @doc deprecated: "Use MuonTrap.PortBinary.open/3 instead"
  @doc "See `MuonTrap.PortBinary.open/3`."
  @spec open(MuonTrap.Options.t(), :output | :none, [String.t()]) :: port()
  defdelegate open(options, capture, extra_args \\ []), to: PortBinary

  @doc deprecated: "Use MuonTrap.PortBinary.args/3 instead"
  @doc "See `MuonTrap.PortBinary.args/3`."
  @spec args(MuonTrap.Options.t(), :output | :none, [String.t()]) :: [String.t()]
  defdelegate args(options, capture, extra_args \\ []), to: PortBinary

  @doc deprecated: "Use MuonTrap.PortBinary.close/1 instead"
  @doc "See `MuonTrap.PortBinary.close/1`."
  @spec close(port() | nil) :: :ok
  defdelegate close(port), to: PortBinary
end
