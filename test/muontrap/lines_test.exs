defmodule MuonTrap.LinesTest do
  # :lines, with System.cmd/3's semantics (Elixir 1.15+): lines without
  # their "\n", each whole whatever its length, the last unterminated one
  # at the end.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Lines

  doctest MuonTrap.Lines

  defp split_all(chunks, max \\ nil) do
    {lines, rest} =
      Enum.flat_map_reduce(chunks, Lines.new(max), fn chunk, acc -> Lines.split(acc, chunk) end)

    lines ++ Lines.flush(rest)
  end

  test "lines split across chunks, empty lines and a kept \\r" do
    assert split_all(["a", "b\n", "\n", "c\r\nd"]) == ["ab", "", "c\r", "d"]
    assert split_all(["\n\n"]) == ["", ""]
    assert split_all([""]) == []
    assert split_all(["x\n"]) == ["x"]
  end

  test "every way of cutting a text into chunks gives the same lines" do
    text = "one\ntwo\n\nthree\r\nfour"
    want = String.split(text, "\n")

    for cut <- 0..byte_size(text) do
      <<a::binary-size(cut), b::binary>> = text
      assert split_all([a, b]) == want, "cut at #{cut}"
    end
  end

  describe "with a max (a daemon's logging)" do
    test "a longer line is cut into pieces of max bytes, its last piece a line too" do
      assert split_all(["abcdefg\nhi\n"], 3) == ["abc", "def", "g", "hi"]
      assert split_all(["abc\n\n"], 3) == ["abc", ""]
      assert split_all(["abcdef"], 3) == ["abc", "def"]
    end

    test "an unterminated line never buffers more than max bytes" do
      {lines, rest} =
        Enum.reduce(1..100, {[], Lines.new(16)}, fn _, {acc, splitter} ->
          {lines, splitter} = Lines.split(splitter, "0123456789")
          {acc ++ lines, splitter}
        end)

      assert Enum.all?(lines, &(byte_size(&1) == 16))

      assert IO.iodata_to_binary(lines ++ Lines.flush(rest)) ==
               String.duplicate("0123456789", 100)

      assert length(lines) == div(1000, 16)
      assert [last] = Lines.flush(rest)
      assert byte_size(last) == rem(1000, 16)
    end

    test "every way of cutting a text into chunks gives the same pieces" do
      text = "one\ntwo-long-line\n\nthree\r\nfour-is-longer"
      want = split_all([text], 4)

      for cut1 <- 0..byte_size(text), cut2 <- cut1..byte_size(text) do
        <<a::binary-size(cut1), b::binary-size(cut2 - cut1), c::binary>> = text
        assert split_all([a, b, c], 4) == want, "cut at #{cut1}, #{cut2}"
      end
    end

    test "a line of exactly max bytes is one line" do
      assert split_all(["abc\ndef"], 3) == ["abc", "def"]
    end
  end

  test "cmd/3 gives lines without their newlines, as System.cmd/3 does on 1.15+" do
    assert {["hello", "world"], 0} = MuonTrap.cmd("echo", ["hello\nworld"], into: [], lines: 1024)
    assert {[], 0} = MuonTrap.cmd("true", [], into: [], lines: 1024)
    assert {["no newline"], 0} = MuonTrap.cmd("printf", ["no newline"], into: [], lines: 1024)
  end

  test "a line longer than the size, and longer than a pipe, is delivered whole" do
    {[long, "after"], 0} =
      MuonTrap.cmd("sh", ["-c", "head -c 300000 /dev/zero | tr '\\0' a; echo; echo after"],
        into: [],
        lines: 16
      )

    assert long == :binary.copy("a", 300_000)
  end

  test "10 MB of numbered lines arrive in order, none lost or joined" do
    {lines, 0} = MuonTrap.cmd("seq", ["1", "1000000"], into: [], lines: 1024, stdio_window: 4096)
    assert length(lines) == 1_000_000
    assert lines == Enum.map(1..1_000_000, &Integer.to_string/1)
  end

  test "with stderr_to_stdout, and into a binary the lines are joined as given" do
    assert {["out", "err"], 0} =
             MuonTrap.cmd("sh", ["-c", "echo out; sleep 0.05; echo err >&2"],
               into: [],
               lines: 8,
               stderr_to_stdout: true
             )

    assert {"ab", 0} = MuonTrap.cmd("printf", ["a\nb\n"], lines: 8)
  end

  test "at a timeout the lines so far come back, the partial one too" do
    m = marker()
    script = "printf 'full\\npart'; exec #{helper()} sleep #{m}"

    assert {["full", "part"], :timeout} =
             MuonTrap.cmd("sh", ["-c", script], into: [], lines: 8, timeout: 300)

    wait_until(fn -> pids_matching(m) == [] end)
  end

  test "a size that is not a positive integer is an ArgumentError" do
    for bad <- [0, -1, 1.5, :yes, 2 ** 32] do
      assert_raise ArgumentError,
                   ~r/invalid option :lines with value .*expected a buffer size/,
                   fn ->
                     MuonTrap.cmd("echo", [], lines: bad)
                   end
    end
  end
end
