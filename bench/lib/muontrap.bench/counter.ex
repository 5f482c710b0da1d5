defmodule Mix.Tasks.Muontrap.Bench.Counter do
  @moduledoc false
  # A Collectable that only counts bytes, so neither side pays for building
  # a 1 GB binary and every byte is still accounted for.
  defstruct bytes: 0

  defimpl Collectable do
    def into(c) do
      {c,
       fn
         acc, {:cont, data} -> %{acc | bytes: acc.bytes + byte_size(data)}
         acc, :done -> acc
         _, :halt -> :ok
       end}
    end
  end
end
