defmodule MuonTrap.Test.Storm do
  @moduledoc false
  # The isolation storm (test/muontrap/isolation_test.exs,
  # spawner_storm_test.exs): many concurrent cmd/3 calls beside callers
  # killed at random moments. Every command writes text of its own, so a
  # single foreign byte in a result is seen.

  import MuonTrap.Test.OSProcess

  @size 100_000
  @concurrency 16
  @hang_ms 20_000

  alias MuonTrap.Test.FunCollectable

  @doc """
  Run `pairs` pairs of `mode` (:output, :input, :stream, or :tracked:
  :output collected `:into` a binary, so that a caller that raises says
  how many bytes it had) with `opts`
  for every command, calling `progress.(i)` after each pair. Returns the
  storm's marker (in every command line) and the pairs that did not end
  with their own output, status 0: `{:crosstalk, i, sample}`,
  `{:status, i, sample, status}`, `{:raised, i, message, bytes_before}`, or
  `{:exit, :timeout}` for a hang.
  """
  def run(pairs, opts, mode \\ :output, progress \\ fn _ -> :ok end) do
    m = marker()

    failures =
      1..pairs
      |> Task.async_stream(
        fn i ->
          result = pair(m, i, opts, mode)
          progress.(i)
          result
        end,
        max_concurrency: @concurrency,
        timeout: @hang_ms,
        on_timeout: :kill_task,
        ordered: false
      )
      |> Enum.reject(&(&1 == {:ok, :ok}))
      |> Enum.map(fn
        {:ok, failure} -> failure
        other -> other
      end)

    {m, failures}
  end

  @doc "The text `text` repeated up to `size` bytes."
  def expected(text, size \\ @size),
    do: binary_part(String.duplicate(text, div(size, byte_size(text)) + 1), 0, size)

  # A command whose caller is killed 0-2 ms after it starts (before
  # STARTED, while streaming, or, for the half that end at once, between
  # EXIT and the return), beside one whose output is checked byte for byte.
  # Modes: :output (the command writes its own text), :input (cat echoes
  # the text given as :input; the victim's input is a stranger's), and
  # :stream (stream!/3 with stdout and stderr apart, each with its text).
  defp pair(m, i, opts, mode) do
    leak_bytes = if rem(i, 2) == 0, do: "0", else: "1000"
    victim = spawn(fn -> victim(mode, "LEAK#{m}.#{i}.", leak_bytes, opts) end)

    spawn(fn ->
      Process.sleep(:rand.uniform(3) - 1)
      Process.exit(victim, :kill)
    end)

    text = "G#{m}.#{i}."

    try do
      check(mode, text, opts, i)
    rescue
      e -> {:raised, i, Exception.message(e), Process.get(:storm_bytes, 0)}
    end
  end

  defp victim(mode, text, n, opts) when mode in [:output, :tracked],
    do: MuonTrap.cmd(helper(), ["repeat", text, n], opts)

  defp victim(:input, text, n, opts),
    do: MuonTrap.cmd("cat", [], [input: expected(text, String.to_integer(n))] ++ opts)

  defp victim(:stream, text, n, opts),
    do: Enum.to_list(MuonTrap.stream!("sh", ["-c", both(text, n)], [stderr: :separate] ++ opts))

  defp both(text, n),
    do: "#{helper()} repeat O#{text} #{n}; #{helper()} repeat E#{text} #{n} >&2"

  defp check(:output, text, opts, i),
    do: compare(MuonTrap.cmd(helper(), ["repeat", text, "#{@size}"], opts), text, i)

  defp check(:tracked, text, opts, i) do
    into = %FunCollectable{acc: "", fun: &track/2}
    compare(MuonTrap.cmd(helper(), ["repeat", text, "#{@size}"], [into: into] ++ opts), text, i)
  end

  defp check(:input, text, opts, i),
    do: compare(MuonTrap.cmd("cat", [], [input: expected(text)] ++ opts), text, i)

  defp check(:stream, text, opts, i) do
    elements =
      Enum.to_list(MuonTrap.stream!("sh", ["-c", both(text, @size)], [stderr: :separate] ++ opts))

    out = for {:stdout, data} <- elements, into: "", do: data
    err = for {:stderr, data} <- elements, into: "", do: data

    with :ok <- compare({out, 0}, "O" <> text, i),
         do: compare({err, 0}, "E" <> text, i)
  end

  defp track(acc, {:cont, data}) do
    acc = acc <> data
    Process.put(:storm_bytes, byte_size(acc))
    acc
  end

  defp track(acc, :done), do: acc
  defp track(_acc, :halt), do: :ok

  defp compare({out, 0}, text, i),
    do: if(out == expected(text), do: :ok, else: {:crosstalk, i, sample(out, text)})

  defp compare({out, status}, text, i), do: {:status, i, sample(out, text), status}

  defp sample(out, text) do
    case :binary.match(out, "LEAK") do
      {pos, _} -> binary_part(out, pos, min(40, byte_size(out) - pos))
      :nomatch -> "#{byte_size(out)} bytes, not #{text} repeated"
    end
  end
end
