defmodule MuonTrap.Input do
  @moduledoc false
  # The `:input` of `MuonTrap.cmd/3` and `MuonTrap.stream!/3`, as a source
  # of binaries pulled one at a time: a lazy enumerable is asked for its
  # next element only once the previous one is in the command's stdin, so
  # it is consumed as fast as the command reads and no faster.
  #
  # A binary is one chunk. A list is walked as iodata (nested lists, bytes,
  # binaries, a binary tail), element by element, so a long list is never
  # flattened whole. Any other `Enumerable` must produce iodata elements.

  @enforce_keys [:next]
  defstruct [:next]

  @typedoc "What is left of the input."
  @type t :: %__MODULE__{next: term()}

  @doc """
  Check that `input` is something to write and prepare to pull from it.

      iex> {chunk, input} = MuonTrap.Input.pull(MuonTrap.Input.new(["ab", ?c | "d"]))
      iex> chunk
      "ab"
      iex> {"c", input} = MuonTrap.Input.pull(input)
      iex> {"d", input} = MuonTrap.Input.pull(input)
      iex> MuonTrap.Input.pull(input)
      :done

  Raises `ArgumentError` for anything that is neither iodata nor an
  `Enumerable`.
  """
  @spec new(iodata() | Enumerable.t()) :: t()
  def new(input) when is_binary(input) or is_list(input), do: %__MODULE__{next: {:iodata, input}}

  def new(input) do
    if Enumerable.impl_for(input) do
      %__MODULE__{
        next: {:enum, &Enumerable.reduce(input, &1, fn x, _ -> {:suspend, {:element, x}} end)}
      }
    else
      raise ArgumentError,
            "invalid option :input with value #{inspect(input)}, expected iodata or an Enumerable of iodata"
    end
  end

  @doc """
  The next non-empty chunk and what is left, or `:done`. Raises
  `ArgumentError` for an element that is not iodata.
  """
  @spec pull(t()) :: {binary(), t()} | :done
  def pull(%__MODULE__{next: next}) do
    case step(next) do
      :done -> :done
      {"", rest} -> pull(%__MODULE__{next: rest})
      {chunk, rest} -> {chunk, %__MODULE__{next: rest}}
    end
  end

  @doc "Stop pulling: a lazy enumerable gets to clean up (close its file)."
  @spec halt(t() | nil) :: :ok
  def halt(%__MODULE__{next: {:enum, cont}}) do
    _ = cont.({:halt, :none})
    :ok
  end

  def halt(_input), do: :ok

  defp step({:iodata, bin}) when is_binary(bin), do: {bin, :done}
  defp step({:iodata, []}), do: :done
  defp step({:iodata, [head | tail]}), do: {element(head), {:iodata, tail}}
  defp step({:iodata, other}), do: bad_element!(other)
  defp step(:done), do: :done

  # An enumerable that halts right after an element (Stream.take/2's
  # last) returns it as the accumulator instead of suspending on it.
  defp step({:enum, cont}) do
    case cont.({:cont, :none}) do
      {:suspended, {:element, x}, cont} -> {element(x), {:enum, cont}}
      {done, {:element, x}} when done in [:done, :halted] -> {element(x), :done}
      {done, :none} when done in [:done, :halted] -> :done
    end
  end

  defp element(bin) when is_binary(bin), do: bin
  defp element(byte) when is_integer(byte) and byte in 0..255, do: <<byte>>

  defp element(list) when is_list(list) do
    IO.iodata_to_binary(list)
  rescue
    ArgumentError -> bad_element!(list)
  end

  defp element(other), do: bad_element!(other)

  defp bad_element!(other) do
    raise ArgumentError,
          "invalid element in option :input: #{inspect(other)}, expected iodata " <>
            "(a binary, a byte or a list of them)"
  end
end
