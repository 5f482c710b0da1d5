defmodule MuonTrap.Daemon.Ending do
  @moduledoc false
  # How a daemon's command ends: the stop reason its exit status maps to.
  # The wait at the daemon's stop and the supervisor's death are the
  # engine's (MuonTrap.Engine).

  require Logger

  @doc """
  The stop reason for exit `status`: `:normal` for 0, the
  `:exit_status_to_reason` mapping (default `:error_exit_status`)
  otherwise, and `{:muontrap_error, message}` after the port reported an
  error. Each is logged, as in MuonTrap 2.0.
  """
  @spec reason(non_neg_integer(), map()) :: term()
  def reason(0, %{error: nil, command: command}) do
    Logger.info("#{command}: Process exited successfully")
    :normal
  end

  def reason(status, %{error: nil, command: command, options: options}) do
    Logger.error("#{command}: Process exited with status #{status}")
    to_reason = Map.get(options, :exit_status_to_reason, fn _ -> :error_exit_status end)
    to_reason.(status)
  end

  def reason(_status, %{error: message}), do: {:muontrap_error, message}
end
