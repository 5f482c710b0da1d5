defmodule MuonTrap.Test.FunCollectable do
  @moduledoc false
  # A Collectable whose collector function the test supplies, to control
  # when (and whether) output is taken.
  defstruct [:fun, :acc]

  defimpl Collectable do
    def into(%{fun: fun, acc: acc}), do: {acc, fun}
  end
end
