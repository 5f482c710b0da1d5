defmodule MuonTrap.Notices do
  @moduledoc false
  # The end notices' dispatcher (docs/protocol.md, "End notices"; Linux
  # only): one process per BEAM that owns an Erlang port on the NIF's
  # notice pipe, to which supervisors write the id of each `cmd/3` or
  # `stream!/3` whose EXIT is in its channel. The NIF turns each id into
  # `{:muontrap_ended, id}` for the command's owner (MuonTrap.Engine).
  #
  # A port, not `enif_select`: the schedulers poll a port's descriptor
  # themselves, so a notice wakes one thread, and a burst of ends wakes it
  # once, where each `enif_select` event wakes the poll thread and then a
  # scheduler (docs/performance.md, round 14).
  #
  # Started by the first start that finds none (MuonTrap.PortBinary), and
  # at the application's start; never under a supervisor, so stopping the
  # application leaves running commands their notices. Without it (before
  # it is up, or after it died) a start asks for no notice and its command
  # ends as without one; a dispatcher that replaces a dead one says so.

  require Logger

  alias MuonTrap.Nif

  @doc "Start the dispatcher unless it runs (or this system has no notices)."
  @spec ensure() :: :ok
  def ensure do
    if Process.whereis(__MODULE__) == nil and MuonTrap.Platform.info().end_notices do
      _ = spawn(&init/0)
    end

    :ok
  end

  defp init do
    # Whoever registers first dispatches; another start's process ends.
    if register(), do: attach()
  end

  defp register do
    Process.register(self(), __MODULE__)
  rescue
    ArgumentError -> false
  end

  defp attach do
    case Nif.notices_attach() do
      {:ok, fd, replaced} ->
        if replaced do
          Logger.warning(
            "muontrap: the end notices' dispatcher was restarted: commands started " <>
              "while there was none learned of their end later (up to 250 ms)"
          )
        end

        # The descriptor is the NIF's and stays open for the BEAM's life
        # (the fd driver never closes it), so its number names nothing else.
        port = Port.open({:fd, fd, fd}, [:binary, :in])
        loop(port, "")

      {:error, reason} ->
        Logger.error("muontrap: no end notices: #{inspect(reason)}")
    end
  end

  defp loop(port, rest) do
    receive do
      {^port, {:data, data}} -> loop(port, Nif.notices_dispatch(rest <> data))
      _other -> loop(port, rest)
    end
  end
end
