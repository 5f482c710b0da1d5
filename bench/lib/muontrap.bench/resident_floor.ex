defmodule Mix.Tasks.Muontrap.Bench.ResidentFloor do
  @moduledoc false
  # A client of `bench/floor.c --resident`, started once per run as an
  # Erlang port: one process owns the port, tags each request with an id
  # and answers its caller when the line "ID STATUS HEXOUTPUT" comes back.
  # Requests from many callers are in flight at once, as with MuonTrap's
  # resident spawner.

  @doc "Starts the resident floor program (linked to the caller)."
  def start(floor) do
    parent = self()

    pid =
      spawn_link(fn ->
        port =
          Port.open({:spawn_executable, floor}, [
            :binary,
            :exit_status,
            args: ["--resident"],
            line: 65_536
          ])

        send(parent, {self(), :ready})
        loop(port, 0, %{})
      end)

    receive do: ({^pid, :ready} -> pid)
  end

  @doc "Runs `cmd` with `args` (no spaces in either) through the resident: `{output, status}`."
  def cmd(server, cmd, args) do
    ref = make_ref()
    send(server, {:cmd, self(), ref, Enum.join([cmd | args], " ")})

    receive do
      {^ref, result} -> result
    after
      30_000 -> Mix.raise("bench/floor.c --resident did not answer")
    end
  end

  @doc "Closes the port: the resident waits for its children and exits."
  def stop(server) do
    ref = Process.monitor(server)
    send(server, :stop)
    receive do: ({:DOWN, ^ref, _, _, _} -> :ok)
  end

  defp loop(port, next, waiting) do
    receive do
      {:cmd, from, ref, line} ->
        true = Port.command(port, "#{next} #{line}\n")
        loop(port, next + 1, Map.put(waiting, next, {from, ref}))

      {^port, {:data, {:eol, line}}} ->
        [id, status, hex] = String.split(line, " ", parts: 3)
        {{from, ref}, waiting} = Map.pop(waiting, String.to_integer(id))
        send(from, {ref, {Base.decode16!(hex, case: :lower), String.to_integer(status)}})
        loop(port, next, waiting)

      :stop ->
        Port.close(port)

      {^port, {:exit_status, status}} ->
        Mix.raise("bench/floor.c --resident exited with #{status}")
    end
  end
end
