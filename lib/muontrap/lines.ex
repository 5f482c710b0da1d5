defmodule MuonTrap.Lines do
  @moduledoc """
  The `:lines` option of `MuonTrap.cmd/3` and `MuonTrap.stream!/3`, with
  the semantics of `System.cmd/3`'s (Elixir 1.15+): output is delivered
  as lines without their `"\\n"` (a `"\\r"` before it stays, as with the
  port's line mode). Each finished line is delivered whole, whatever its
  length, as `System.cmd/3` does: the option's size bounds the port's
  buffer there; here output arrives in pipe-sized chunks, so the size is
  accepted and checked but changes nothing. An unterminated last line is
  delivered when the stream ends.
  """

  defstruct parts: []

  @typedoc "A partial line (reversed iodata) waiting for its newline."
  @type t :: %__MODULE__{parts: iodata()}

  @doc "A splitter with nothing buffered."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc """
  The lines `data` finishes, and the splitter with the unfinished rest.

      iex> {lines, rest} = MuonTrap.Lines.split(MuonTrap.Lines.new(), "a\\nb\\npart")
      iex> lines
      ["a", "b"]
      iex> {more, rest} = MuonTrap.Lines.split(rest, "ial\\n")
      iex> {more, MuonTrap.Lines.flush(rest)}
      {["partial"], []}
  """
  @spec split(t(), binary()) :: {[binary()], t()}
  def split(lines, data) do
    case :binary.split(data, "\n", [:global]) do
      [no_newline] ->
        {[], %{lines | parts: [no_newline | lines.parts]}}

      [first | more] ->
        {done, [rest]} = Enum.split(more, -1)
        line = IO.iodata_to_binary(Enum.reverse([first | lines.parts]))
        {[line | done], %{lines | parts: if(rest == "", do: [], else: [rest])}}
    end
  end

  @doc "The unterminated last line, if there is one, as a list of zero or one lines."
  @spec flush(t()) :: [binary()]
  def flush(%__MODULE__{parts: []}), do: []

  def flush(%__MODULE__{parts: parts}) do
    case IO.iodata_to_binary(Enum.reverse(parts)) do
      "" -> []
      line -> [line]
    end
  end
end
