defmodule Collect do
  @moduledoc false
  # A Collectable that forwards each chunk to a process, so a test can watch
  # output arrive from a command running in another process. With `max`,
  # only the first `max` chunks are forwarded: an endless command then
  # fills no mailbox while a test waits for its fault.
  defstruct [:to, max: :infinity, sent: 0]

  defimpl Collectable do
    def into(%{to: pid} = c) do
      {c,
       fn
         %{max: max, sent: sent} = c, {:cont, data} when max == :infinity or sent < max ->
           send(pid, {:collected, data})
           %{c | sent: sent + 1}

         c, _ ->
           c
       end}
    end
  end
end
