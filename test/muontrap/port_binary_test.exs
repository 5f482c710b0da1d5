defmodule MuonTrap.PortBinaryTest do
  use ExUnit.Case, async: true

  alias MuonTrap.{Options, PortBinary, Protocol}

  test "a port opened by open/3 runs the command; close/1 leaves no message behind" do
    port = PortBinary.open(Options.validate(:cmd, "true", [], []), :none)
    assert exit_frame(port) == {:exit, 0}
    assert PortBinary.close(port) == :ok
    assert PortBinary.close(nil) == :ok
    refute_received {^port, _}
  end

  test "MuonTrap.Port, the module's name before its release, is gone" do
    refute Code.ensure_loaded?(MuonTrap.Port)
  end

  defp exit_frame(port) do
    receive do
      {^port, {:data, frame}} ->
        with {:started, _pid} <- Protocol.decode(frame), do: exit_frame(port)
    after
      5_000 -> flunk("no EXIT frame")
    end
  end
end
