defmodule MuonTrap.Lines do
  @moduledoc false
  # The one line splitter, for `:lines` of cmd/3 and stream!/3 and for a
  # daemon's logged output. Lines come without their "\n" (a "\r" before
  # it stays, as with the port's line mode); an unterminated last line is
  # flushed when the stream ends.
  #
  # `max: nil` delivers each line whole, whatever its length, as
  # System.cmd/3 (Elixir 1.15+) does: its `:lines` size bounds the port's
  # buffer there; here output arrives in pipe-sized chunks, so the size is
  # accepted and checked but changes nothing. A `max` cuts longer lines
  # into pieces of that many bytes and never buffers more, so an
  # unterminated stream cannot grow memory (a daemon's logging).

  alias MuonTrap.Bytes

  defstruct parts: [], max: nil

  @typedoc "A partial line (reversed iodata) waiting for its newline, and the cut length."
  @type t :: %__MODULE__{parts: iodata(), max: pos_integer() | nil}

  @doc "A splitter with nothing buffered, cutting lines longer than `max` bytes (`nil`: never)."
  @spec new(pos_integer() | nil) :: t()
  def new(max \\ nil), do: %__MODULE__{max: max}

  @doc """
  The lines `data` finishes, and the splitter with the unfinished rest.

      iex> {lines, rest} = MuonTrap.Lines.split(MuonTrap.Lines.new(), "a\\nb\\npart")
      iex> lines
      ["a", "b"]
      iex> {more, rest} = MuonTrap.Lines.split(rest, "ial\\n")
      iex> {more, MuonTrap.Lines.flush(rest)}
      {["partial"], []}

      iex> {lines, rest} = MuonTrap.Lines.split(MuonTrap.Lines.new(2), "abcde\\nfgh")
      iex> {lines, MuonTrap.Lines.flush(rest)}
      {["ab", "cd", "e", "fg"], ["h"]}
  """
  @spec split(t(), binary()) :: {[binary()], t()}
  def split(%__MODULE__{max: nil} = lines, data) do
    case Bytes.split(data, ?\n) do
      [no_newline] ->
        {[], %{lines | parts: [no_newline | lines.parts]}}

      [first | more] ->
        {done, [rest]} = Enum.split(more, -1)
        line = IO.iodata_to_binary(Enum.reverse([first | lines.parts]))
        {[line | done], %{lines | parts: if(rest == "", do: [], else: [rest])}}
    end
  end

  # The buffer is at most `max` bytes, so joining it is cheap.
  def split(%__MODULE__{max: max} = lines, data) do
    {done, rest} = take(Bytes.split(buffered(lines) <> data, ?\n), max, [])
    {done, rest} = cut(rest, max, done, false)
    {Enum.reverse(done), %{lines | parts: if(rest == "", do: [], else: [rest])}}
  end

  defp take([rest], _max, acc), do: {acc, rest}
  defp take([line | more], max, acc), do: take(more, max, elem(cut(line, max, acc, true), 0))

  # Pieces of `max` bytes off the front; a whole line's last piece is a
  # line too, a partial line's stays buffered.
  defp cut(line, max, acc, whole?) when byte_size(line) > max do
    <<head::binary-size(max), tail::binary>> = line
    cut(tail, max, [head | acc], whole?)
  end

  defp cut(line, _max, acc, true), do: {[line | acc], ""}
  defp cut(line, _max, acc, false), do: {acc, line}

  defp buffered(%__MODULE__{parts: parts}), do: IO.iodata_to_binary(Enum.reverse(parts))

  @doc "The unterminated last line, if there is one, as a list of zero or one lines."
  @spec flush(t()) :: [binary()]
  def flush(%__MODULE__{parts: []}), do: []

  def flush(lines) do
    case buffered(lines) do
      "" -> []
      line -> [line]
    end
  end
end
