defmodule MuonTrap.PortBinaryTest do
  use ExUnit.Case, async: true

  alias MuonTrap.{Options, PortBinary, Protocol}

  describe "the deprecated MuonTrap.Port alias" do
    test "delegates every function to MuonTrap.PortBinary" do
      assert MuonTrap.Port.default_window() == PortBinary.default_window()
      assert MuonTrap.Port.path() == PortBinary.path()

      opts = Options.validate(:cmd, "/bin/sh", [], delay_to_sigkill: 100)
      assert MuonTrap.Port.args(opts, :none) == PortBinary.args(opts, :none)
      assert MuonTrap.Port.args(opts, :output, ["-x"]) == PortBinary.args(opts, :output, ["-x"])

      # A port opened through the alias runs the command; close/1 through it
      # leaves no message behind.
      port = MuonTrap.Port.open(Options.validate(:cmd, "true", [], []), :none)
      assert exit_frame(port) == {:exit, 0}
      assert MuonTrap.Port.close(port) == :ok
      assert MuonTrap.Port.close(nil) == :ok
      refute_received {^port, _}
    end

    test "every function is documented as deprecated, naming its replacement" do
      {:docs_v1, _, :elixir, _, %{"en" => moduledoc}, _, docs} = Code.fetch_docs(MuonTrap.Port)
      assert moduledoc =~ "MuonTrap.PortBinary"

      functions = for {{:function, name, _arity}, _, _, _, meta} <- docs, do: {name, meta}
      exported = for {name, _arity} <- MuonTrap.Port.__info__(:functions), uniq: true, do: name
      assert Enum.sort(Keyword.keys(functions)) == Enum.sort(exported)

      for {name, meta} <- functions do
        assert meta[:deprecated] =~ "MuonTrap.PortBinary.#{name}/"
      end
    end
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
