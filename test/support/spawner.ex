defmodule MuonTrap.Test.Spawner do
  @moduledoc false
  # The resident spawner and its supervisors seen from /proc: the spawner
  # leaves the BEAM's session (setsid), so it, every supervisor it forks
  # and every command is in the session whose id is the spawner's pid,
  # even once the spawner is gone and they are reparented. That tells this
  # BEAM's supervisors from another BEAM's (other `mix test` runs share
  # the machine).

  import ExUnit.Assertions
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Test.ProcFS

  @port_died "muontrap: the command's supervisor exited unexpectedly"

  @doc "The error a caller gets when its command's supervisor dies."
  def port_died, do: @port_died

  @doc """
  This BEAM's running spawner: a command is run first, so a spawner
  that was killed (and not yet noticed) is replaced.
  """
  def spawner do
    {"", 0} = MuonTrap.cmd("true", [])
    pid = MuonTrap.Nif.spawner_pid()
    assert is_integer(pid) and alive?(pid)
    pid
  end

  @doc "SIGKILL the running spawner and wait until it is gone; returns its pid."
  def kill_spawner(pid \\ MuonTrap.Nif.spawner_pid()) do
    {_, _} = System.cmd("kill", ["-KILL", "#{pid}"], stderr_to_stdout: true)
    wait_all_dead([pid], 10_000)
    pid
  end

  @doc "ppid, process group, session and state of OS process `pid`, or nil if it is gone."
  def stat(pid) do
    with {:ok, stat} <- ProcFS.read("/proc/#{pid}/stat"),
         [_, rest] <- String.split(stat, ") ", parts: 2),
         [state, ppid, pgrp, session | _] <- String.split(rest, " ") do
      %{
        state: state,
        ppid: String.to_integer(ppid),
        pgrp: String.to_integer(pgrp),
        session: String.to_integer(session)
      }
    else
      _ -> nil
    end
  end

  defp all_stats do
    for "/proc/" <> pid <- ProcFS.pids(),
        s = stat(pid),
        s != nil and s.state not in ["Z", "X"],
        do: Map.put(s, :pid, String.to_integer(pid))
  end

  @doc "Live processes whose parent is `pid`."
  def children(pid), do: for(s <- all_stats(), s.ppid == pid, do: s.pid)

  @doc """
  The children of `pid` that have children of their own (supervisors
  running a command), as {child, one of its children}.
  """
  def running_children(pid) do
    stats = all_stats()
    kids = for s <- stats, s.ppid == pid, into: MapSet.new(), do: s.pid
    for s <- stats, s.ppid in kids, uniq: true, do: {s.ppid, s.pid}
  end

  @doc "Live processes in any of the sessions `sids`, but the session leaders in `except`."
  def in_sessions(sids, except \\ []) do
    for s <- all_stats(), s.session in sids, s.pid not in except, do: s.pid
  end

  @doc "Live processes in process group `pgrp`."
  def in_group(pgrp), do: for(s <- all_stats(), s.pgrp == pgrp, do: s.pid)

  @doc """
  Wait until nothing is left in the sessions of `spawners` (pids of
  spawners this test used) but the running spawner itself: no
  supervisor, no command, no older spawner.
  """
  def assert_sessions_empty(spawners) do
    wait_until(fn -> left_in_sessions(spawners) == [] end, 15_000, fn ->
      "nothing left in the spawners' sessions #{inspect(spawners)}: " <>
        inspect(Enum.map(left_in_sessions(spawners), &describe/1))
    end)
  end

  # Taken again at each look: the running spawner forks its next standby
  # once a start is over, so a list taken once goes stale.
  defp left_in_sessions(spawners) do
    running = List.wrap(MuonTrap.Nif.spawner_pid())
    in_sessions(spawners, running ++ Enum.flat_map(running, &standbys/1))
  end

  defp describe(pid) do
    case stat(Integer.to_string(pid)) do
      nil -> {pid, :gone}
      s -> {pid, s.state, [ppid: s.ppid], fds(pid)}
    end
  end

  @doc """
  The spawner's standby supervisors (forked ahead of a request): its
  children waiting on their socket to it (fd 0) with the spawner's
  `/dev/null` still on fd 1, where a supervisor has its channel.
  """
  def standbys(spawner) do
    for pid <- children(spawner),
        %{0 => "socket:" <> _, 1 => "/dev/null"} <- [fds(pid)],
        do: pid
  end

  @doc "OS process `pid`'s descriptors: a map of fd number to link (\"socket:[12]\"), {} if gone."
  def fds(pid) do
    case ProcFS.ls("/proc/#{pid}/fd") do
      {:ok, names} ->
        for name <- names,
            {:ok, link} <- [ProcFS.read_link("/proc/#{pid}/fd/#{name}")],
            into: %{},
            do: {String.to_integer(name), link}

      {:error, _} ->
        %{}
    end
  end

  @doc """
  Print a figure a test measured, only when MUONTRAP_TEST_REPORT is set:
  `mix test` prints nothing but ExUnit's own output.
  """
  def report(text) do
    if System.get_env("MUONTRAP_TEST_REPORT"), do: IO.puts("\n" <> text)
    :ok
  end
end
