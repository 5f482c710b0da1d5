defmodule MuonTrap.Engine.Timers do
  @moduledoc false
  # The engine's two timers: cmd/3's `:timeout` (`{:timeout, ref,
  # :muontrap_timeout}`) and the lazy channel's (`{:timeout, ref,
  # :muontrap_arm}`). Cancelling one also drops its message if it already
  # fired, so nothing is left in the owner's mailbox.

  @doc "The `:timeout` timer, or `nil` for `:infinity`."
  @spec start(timeout()) :: reference() | nil
  def start(:infinity), do: nil
  def start(ms), do: :erlang.start_timer(ms, self(), :muontrap_timeout)

  @doc "Cancel a `:timeout` timer (or nothing, for `nil`)."
  @spec cancel(reference() | nil) :: :ok
  def cancel(nil), do: :ok
  def cancel(timer), do: cancel(timer, :muontrap_timeout)

  @doc "The lazy channel's timer."
  @spec start_arm(non_neg_integer()) :: reference()
  def start_arm(ms), do: :erlang.start_timer(ms, self(), :muontrap_arm)

  @doc "Cancel the lazy channel's timer (anything else: nothing to do)."
  @spec cancel_arm(term()) :: :ok
  def cancel_arm(lazy) when is_reference(lazy), do: cancel(lazy, :muontrap_arm)
  def cancel_arm(_lazy), do: :ok

  defp cancel(timer, tag) do
    _ = :erlang.cancel_timer(timer)

    receive do
      {:timeout, ^timer, ^tag} -> :ok
    after
      0 -> :ok
    end
  end
end
