defmodule MuonTrap.PortDefaultsTest do
  # Facts the library and the port binary share without passing them. Both
  # read one constant (native/muontrap_wire/src/defaults.rs; the library
  # through the NIF), so these check that each side applies it: the port's
  # `--help` is rendered from the constants that apply them, and the library
  # validates and defaults with what the NIF hands it.
  use ExUnit.Case, async: true

  alias MuonTrap.Options

  defp port_help do
    {help, 0} = System.cmd(MuonTrap.PortBinary.path(), ["--help"])
    help
  end

  test "the library's :delay_to_sigkill default is the port binary's" do
    # The library hands over :delay_to_sigkill only when it is given.
    command = MuonTrap.PortBinary.command(Options.validate(:cmd, "true", [], []), :none)
    refute Map.has_key?(command, :delay_to_sigkill)

    [_, default] = Regex.run(~r/--delay-to-sigkill MS .*\(default (\d+)\)/, port_help())
    assert String.to_integer(default) == MuonTrap.PortBinary.default_delay_to_sigkill()
    assert MuonTrap.PortBinary.delay_to_sigkill(%{}) == MuonTrap.Nif.constants().delay_to_sigkill
  end

  test ":stdio_window has the port binary's minimum" do
    [_, min] = Regex.run(~r/--stdio-window BYTES .*, min (\d+)\)/, port_help())
    min = String.to_integer(min)
    assert %{stdio_window: ^min} = Options.validate(:cmd, "true", [], stdio_window: min)

    assert_raise ArgumentError, ~r/:stdio_window/, fn ->
      Options.validate(:cmd, "true", [], stdio_window: min - 1)
    end
  end
end
