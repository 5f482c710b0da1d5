defmodule MuonTrap.IsolationTest do
  # Many concurrent cmd/3 calls while other callers are killed at random
  # moments: no command's bytes may land in another's result (or in the
  # BEAM's own descriptors), no call may fail or hang, and nothing may be
  # left: no descriptor in the BEAM, no OS process, no cgroup. Every
  # command writes text of its own, so a single foreign byte is seen.
  # Not async: it compares the BEAM's descriptors before and after.
  use ExUnit.Case, async: false

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Cgroup

  @size 100_000
  @concurrency 16
  @hang_ms 20_000

  defp beam_fds, do: length(Path.wildcard("/proc/#{System.pid()}/fd/*"))

  defp expected(text, size \\ @size),
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
      e -> {:raised, i, Exception.message(e)}
    end
  end

  defp victim(:output, text, n, opts), do: MuonTrap.cmd(helper(), ["repeat", text, n], opts)

  defp victim(:input, text, n, opts),
    do: MuonTrap.cmd("cat", [], [input: expected(text, String.to_integer(n))] ++ opts)

  defp victim(:stream, text, n, opts),
    do: Enum.to_list(MuonTrap.stream!("sh", ["-c", both(text, n)], [stderr: :separate] ++ opts))

  defp both(text, n),
    do: "#{helper()} repeat O#{text} #{n}; #{helper()} repeat E#{text} #{n} >&2"

  defp check(:output, text, opts, i),
    do: compare(MuonTrap.cmd(helper(), ["repeat", text, "#{@size}"], opts), text, i)

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

  defp compare({out, 0}, text, i),
    do: if(out == expected(text), do: :ok, else: {:crosstalk, i, sample(out, text)})

  defp compare({out, status}, text, i), do: {:status, i, sample(out, text), status}

  defp sample(out, text) do
    case :binary.match(out, "LEAK") do
      {pos, _} -> binary_part(out, pos, min(40, byte_size(out) - pos))
      :nomatch -> "#{byte_size(out)} bytes, not #{text} repeated"
    end
  end

  defp storm(pairs, opts, mode \\ :output) do
    m = marker()
    fds = beam_fds()

    failures =
      1..pairs
      |> Task.async_stream(&pair(m, &1, opts, mode),
        max_concurrency: @concurrency,
        timeout: @hang_ms,
        on_timeout: :kill_task,
        ordered: false
      )
      |> Enum.reject(&(&1 == {:ok, :ok}))

    assert failures == [], "#{length(failures)} of #{pairs}: #{inspect(Enum.take(failures, 5))}"
    wait_until(fn -> pids_matching(m) == [] end, 10_000, "every command of the storm to be gone")
    wait_until(fn -> beam_fds() <= fds end, 5_000, fn -> "BEAM fds #{beam_fds()} > #{fds}" end)
  end

  @tag timeout: 300_000
  test "1,000 commands beside 1,000 callers killed at random: no cross-talk, errors or hangs" do
    storm(1_000, [])
  end

  @tag timeout: 300_000
  test "500 commands fed :input beside 500 killed callers fed another's: each gets its own back" do
    storm(500, [], :input)
  end

  @tag timeout: 300_000
  test "300 streams with stdout and stderr apart beside 300 killed ones: each byte on its stream" do
    storm(300, [], :stream)
  end

  @tag :soak
  @tag timeout: :infinity
  test "10,000 commands beside 10,000 callers killed at random" do
    storm(10_000, [])
  end

  @tag :cgroup_limits
  @tag timeout: 300_000
  test "callers killed at random leave no cgroup behind" do
    base = "muontrap_test_#{marker()}"
    layout = Cgroup.layout()

    dirs =
      for h <- List.wrap(layout.v2) ++ layout.v1,
          h.own != nil,
          do: Path.join([h.mount, h.own, base])

    on_exit(fn -> for dir <- dirs, File.dir?(dir), do: File.rmdir(dir) end)

    storm(100,
      cgroup_base: base,
      beneath_own_cgroup: true,
      cgroup: %{pids_max: 100}
    )

    wait_until(
      fn ->
        Enum.all?(
          dirs,
          &(Path.wildcard(Path.join(&1, "*/")) |> Enum.filter(fn d -> File.dir?(d) end) == [])
        )
      end,
      10_000,
      "every group beneath #{base} to be removed"
    )
  end
end
