defmodule Collect do
  @moduledoc false
  # A Collectable that forwards each chunk to a process, so a test can watch
  # output arrive from a command running in another process.
  defstruct [:to]

  defimpl Collectable do
    def into(%{to: pid} = c) do
      {c,
       fn
         c, {:cont, data} ->
           send(pid, {:collected, data})
           c

         c, _ ->
           c
       end}
    end
  end
end
