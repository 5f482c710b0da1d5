defmodule MuonTrap.Daemon.Ending do
  @moduledoc """
  How a daemon's command ends: the stop reason its exit status maps to,
  the wait at `terminate/2` until every process of its tree is gone, and
  the cgroup cleanup when the port binary died without doing it.
  """

  require Logger

  alias MuonTrap.Daemon.Pipes
  alias MuonTrap.Protocol

  # Beyond :delay_to_sigkill, how long terminate/2 waits for the port's EXIT.
  @exit_grace 2_000

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

  @doc """
  After TERMINATE was sent: wait until the port reports that every
  process is gone (reading the pipes meanwhile), so the daemon's stop
  means the OS processes are gone; after `:delay_to_sigkill` and a grace,
  SIGKILL the port binary, which is stuck, and clean up the cgroup.
  """
  @spec await(port(), map(), Pipes.t()) :: :ok
  def await(port, options, pipes) do
    delay = MuonTrap.PortBinary.delay_to_sigkill(options)
    await(port, options, pipes, System.monotonic_time(:millisecond) + delay + @exit_grace)
  end

  defp await(port, options, pipes, deadline) do
    timeout = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, frame}} ->
        case Protocol.decode(frame) do
          {:exit, _status} ->
            Port.close(port)
            _ = Pipes.finish(pipes)
            :ok

          _other ->
            await(port, options, pipes, deadline)
        end

      {^port, {:exit_status, _}} ->
        cleanup_cgroup(options)

      message ->
        case Pipes.handle_message(pipes, message) do
          {:ok, pipes} -> await(port, options, pipes, deadline)
          :unknown -> await(port, options, pipes, deadline)
        end
    after
      # A stopped port binary never finishes on its own.
      timeout -> MuonTrap.PortReaper.kill(port, options)
    end
  end

  @doc """
  The port binary died without cleaning up (e.g. it was SIGKILLed): kill
  what is left in its cgroup and remove the group.
  """
  @spec cleanup_cgroup(map()) :: :ok
  def cleanup_cgroup(options) do
    case MuonTrap.Cgroup.cleanup(options) do
      :ok -> :ok
      {:error, reason} -> Logger.error("could not clean up the cgroup: #{inspect(reason)}")
    end
  end
end
