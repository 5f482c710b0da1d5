defmodule MuonTrap.OutputTest do
  # Every byte a command writes must arrive, whatever the window size.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  @sizes [0, 1, 64 * 1024, 1024 * 1024, 100 * 1024 * 1024]
  @runs 20

  for size <- @sizes, window <- [:default, 16] do
    @tag timeout: :infinity
    test "#{size} bytes arrive complete with the #{window} window, #{@runs} times" do
      size = unquote(size)
      opts = if unquote(window) == :default, do: [], else: [stdio_window: unquote(window)]
      expected = pattern(size)

      for _ <- 1..@runs do
        {out, 0} = MuonTrap.cmd(helper(), ["print_bytes", "#{size}"], opts)
        assert byte_size(out) == size
        # Compare without printing 100 MiB on failure.
        assert out == expected, "output of #{size} bytes differs from the pattern"
      end
    end
  end
end
