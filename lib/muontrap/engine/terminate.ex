defmodule MuonTrap.Engine.Terminate do
  @moduledoc false
  # A daemon's stop on the engine (MuonTrap.Engine): TERMINATE, the wait
  # for EXIT with the pipes read meanwhile (a daemon logs to the end),
  # the drain, and the kill of a supervisor that does not finish in time.

  require Logger

  alias MuonTrap.{Engine, PortReaper, Protocol, Stdio}

  @doc """
  For an owner that must see its command gone (a daemon's stop): ask the
  supervisor to terminate the tree and wait for EXIT, reading the pipes
  and handing events to `fun` meanwhile, then drain them. A supervisor
  that has not finished within `MuonTrap.PortReaper.stop_timeout/1` is
  stuck: it is SIGKILLed and what is left cleaned up.
  """
  @spec terminate(Engine.t(), acc, ([Engine.event()], acc -> acc)) :: {acc, Engine.t()}
        when acc: term()
  def terminate(%{live: true} = engine, acc, fun) do
    _ = Stdio.send_frame(engine.stdio, Protocol.terminate())
    deadline = System.monotonic_time(:millisecond) + PortReaper.stop_timeout(engine.options)
    stopping(engine, acc, fun, deadline)
  end

  def terminate(engine, acc, fun), do: Engine.drain(engine, acc, fun)

  defp stopping(engine, acc, fun, deadline) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    case Engine.step(engine, left) do
      {events, %{live: false} = engine} ->
        Engine.drain(engine, fun.(events, acc), fun)

      {events, engine} when left > 0 ->
        stopping(engine, fun.(events, acc), fun, deadline)

      {events, engine} ->
        Logger.warning(
          "muontrap: the command's supervisor did not finish within " <>
            "#{PortReaper.stop_timeout(engine.options)} ms of being asked to stop " <>
            "(stopped?); killing it and cleaning up"
        )

        PortReaper.kill(engine.stdio, engine.options)
        {fun.(events, acc), Engine.close(%{engine | live: false})}

      :finished ->
        {acc, Engine.close(engine)}
    end
  end
end
