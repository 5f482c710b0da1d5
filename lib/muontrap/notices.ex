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
  # Started at the application's start, and by a start that finds none
  # attached (MuonTrap.Stdio.hand_over!/4); never under a supervisor, so
  # stopping the application leaves running commands their notices.
  # Without it (before it is up, or after it died) a start asks for no
  # notice and its command ends as without one; a dispatcher that replaces
  # a dead one says so. A notice lost to a dispatcher that died after its
  # command started costs that command 250 ms (MuonTrap.Engine's fallback).

  require Logger

  alias MuonTrap.Nif

  @doc """
  Start the dispatcher unless it runs, or have it attach again: a start
  that asked for a notice and got none calls this, as the NIF knows of no
  live dispatcher (it is starting, it died, or a code upgrade loaded a
  library with a notice pipe of its own).
  """
  @spec ensure() :: :ok
  def ensure do
    case Process.whereis(__MODULE__) do
      nil -> if MuonTrap.Platform.info().end_notices, do: _ = spawn(&init/0)
      pid -> send(pid, :attach)
    end

    :ok
  end

  defp init do
    # Whoever registers first dispatches; another start's process ends.
    if register(), do: attach(%{})
  end

  defp register do
    Process.register(self(), __MODULE__)
  rescue
    ArgumentError -> false
  end

  # `ports`: a port per notice pipe read, with the bytes of a notice not
  # complete yet. One pipe, unless a code upgrade loaded a library with a
  # pipe of its own: the old one's supervisors still write to theirs.
  defp attach(ports) do
    case Nif.notices_attach() do
      {:ok, fd, replaced} ->
        if replaced do
          Logger.warning(
            "muontrap: the end notices' dispatcher was restarted: commands started " <>
              "while there was none learned of their end later (up to 250 ms)"
          )
        end

        loop(open(ports, fd))

      {:error, reason} ->
        Logger.error("muontrap: no end notices: #{inspect(reason)}")
    end
  end

  # The descriptor is the NIF's and stays open for the BEAM's life (the
  # fd driver never closes it), so its number names nothing else.
  defp open(ports, fd) do
    if Enum.any?(ports, fn {_port, {f, _rest}} -> f == fd end),
      do: ports,
      else: Map.put(ports, Port.open({:fd, fd, fd}, [:binary, :in]), {fd, ""})
  end

  defp loop(ports) do
    receive do
      {port, {:data, data}} when is_map_key(ports, port) ->
        {fd, rest} = Map.fetch!(ports, port)
        loop(Map.put(ports, port, {fd, Nif.notices_dispatch(rest <> data)}))

      :attach ->
        attach(ports)

      _other ->
        loop(ports)
    end
  end
end
