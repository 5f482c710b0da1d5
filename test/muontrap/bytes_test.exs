defmodule MuonTrap.BytesTest do
  use ExUnit.Case, async: true

  alias MuonTrap.{Bytes, Lines, Options}

  test "member?/2 and split/2 agree with :binary.match/2 and :binary.split/3 at every length and position" do
    for size <- 0..20, at <- [nil | Enum.to_list(0..max(size - 1, 0))], at == nil or at < size do
      base = :binary.copy("a", size)

      subject =
        if at,
          do: binary_part(base, 0, at) <> <<0>> <> binary_part(base, at + 1, size - at - 1),
          else: base

      for byte <- [0, ?/, ?a] do
        assert Bytes.member?(subject, byte) == (:binary.match(subject, <<byte>>) != :nomatch),
               "#{inspect(subject)} #{byte}"

        assert Bytes.split(subject, byte) == :binary.split(subject, <<byte>>, [:global]),
               "#{inspect(subject)} #{byte}"
      end
    end
  end

  # On OTP 25, :binary.match/2 of an absent byte in 1 to 7 bytes takes
  # a whole reduction budget: each start would be scheduled out for it.
  test "validating a command with short names and arguments takes no whole reduction budget" do
    assert reductions(fn -> Options.validate_for_cmd("true", ["-c", "x"], env: [{"A", "b"}]) end) <
             1_000

    assert reductions(fn -> Lines.split(Lines.new(), "abc") end) < 1_000
    assert reductions(fn -> Lines.split(Lines.new(4), "abc") end) < 1_000
  end

  defp reductions(fun) do
    fun.()
    {:reductions, before} = Process.info(self(), :reductions)
    fun.()
    {:reductions, later} = Process.info(self(), :reductions)
    later - before
  end
end
