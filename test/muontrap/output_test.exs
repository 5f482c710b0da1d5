defmodule MuonTrap.OutputTest do
  # Every byte a command writes must arrive, whatever the window size, both
  # through the pipe cmd/3 reads directly and through the port binary's relay
  # (its fallback, and what MuonTrap.Daemon uses). Not async: the relay is
  # chosen with application env.
  use ExUnit.Case, async: false

  import MuonTrap.Test.OSProcess

  @mib 1024 * 1024
  @sizes [0, 1, 64 * 1024, @mib, 100 * @mib]
  @runs 20

  # 100 MiB through a 16-byte window is 6.5 million acknowledgement round
  # trips through the relay (about 110 s a run here): once in the default
  # suite, 20 times with `mix test --only soak`.
  cases =
    for path <- [:direct, :relay], size <- @sizes, window <- [:default, 16] do
      if size == 100 * @mib and window == 16,
        do: [{path, size, window, 1, []}, {path, size, window, @runs, [soak: true]}],
        else: [{path, size, window, @runs, []}]
    end

  setup context do
    if context[:relay] do
      Application.put_env(:muontrap, :relay_output, true)
      on_exit(fn -> Application.delete_env(:muontrap, :relay_output) end)
    end

    :ok
  end

  for {path, size, window, runs, tags} <- List.flatten(cases) do
    @tag [timeout: :infinity, relay: path == :relay] ++ tags
    test "#{path}: #{size} bytes arrive complete with the #{window} window, #{runs} times" do
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
