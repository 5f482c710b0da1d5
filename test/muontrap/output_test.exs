defmodule MuonTrap.OutputTest do
  # Every byte a command writes must arrive, whatever the window size,
  # through the pipe cmd/3 reads directly (the only path there is).
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  @mib 1024 * 1024
  @sizes [0, 1, 64 * 1024, @mib, 100 * @mib]
  @runs 20

  # 100 MiB through a 16-byte window is 6.5 million reads: once in the
  # default suite, 20 times with `mix test --only soak`.
  cases =
    for size <- @sizes, window <- [:default, 16] do
      if size == 100 * @mib and window == 16,
        do: [{size, window, 1, []}, {size, window, @runs, [soak: true]}],
        else: [{size, window, @runs, []}]
    end

  for {size, window, runs, tags} <- List.flatten(cases) do
    @tag [timeout: :infinity] ++ tags
    test "#{size} bytes arrive complete with the #{window} window, #{runs} times" do
      size = unquote(size)
      opts = if unquote(window) == :default, do: [], else: [stdio_window: unquote(window)]
      expected = pattern(size)

      for _ <- 1..unquote(runs) do
        {out, 0} = MuonTrap.cmd(helper(), ["print_bytes", "#{size}"], opts)
        assert byte_size(out) == size
        # Compare without printing 100 MiB on failure.
        assert out == expected, "output of #{size} bytes differs from the pattern"
      end
    end
  end
end
