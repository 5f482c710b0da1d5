defmodule Mix.Tasks.Muontrap.Bench.Procs do
  @moduledoc false
  # What /proc says about OS processes: RSS, liveness, descendants, and
  # what the run left behind.

  @doc "The resident set of OS process `pid` in KB (0 if it is gone)."
  def rss_kb(pid) do
    case File.read("/proc/#{pid}/status") do
      {:ok, s} ->
        case Regex.run(~r/VmRSS:\s+(\d+)/, s) do
          [_, kb] -> String.to_integer(kb)
          _ -> 0
        end

      _ ->
        0
    end
  end

  @doc """
  The machine's 1-minute load average as text, from /proc/loadavg: on a
  shared machine it says how far a run's figures can be trusted.
  """
  @spec load_average() :: String.t()
  def load_average do
    case File.read("/proc/loadavg") do
      {:ok, text} -> text |> String.split() |> hd()
      {:error, _} -> "?"
    end
  end

  @doc "True if `pid` exists and is not a zombie."
  def alive?(pid) when is_integer(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, s} -> not String.contains?(s, ") Z ")
      _ -> false
    end
  end

  def alive?(_), do: false

  def children(pid) when is_integer(pid) do
    case File.read("/proc/#{pid}/task/#{pid}/children") do
      {:ok, s} -> s |> String.split() |> Enum.map(&String.to_integer/1)
      _ -> []
    end
  end

  def children(_), do: []

  @doc "The spawner's children that run a command (not its standby supervisor, which has none)."
  def supervisors(spawner), do: for(pid <- children(spawner), children(pid) != [], do: pid)

  def descendants(pid) do
    kids = children(pid)
    kids ++ Enum.flat_map(kids, &descendants/1)
  end

  @doc "Wait until none of `pids` is alive; raise after `deadline` (monotonic µs)."
  def await_gone(pids, deadline) do
    cond do
      not Enum.any?(pids, &alive?/1) ->
        :ok

      System.monotonic_time(:microsecond) > deadline ->
        Mix.raise("still alive after stop: #{inspect(Enum.filter(pids, &alive?/1))}")

      true ->
        Process.sleep(1)
        await_gone(pids, deadline)
    end
  end

  @doc "The proportional set size of OS process `pid` in KB (0 if it is gone)."
  def pss_kb(pid) do
    case File.read("/proc/#{pid}/smaps_rollup") do
      {:ok, s} ->
        case Regex.run(~r/^Pss:\s+(\d+)/m, s) do
          [_, kb] -> String.to_integer(kb)
          _ -> 0
        end

      _ ->
        0
    end
  end

  @doc "`PageTables` + `KernelStack` of the whole machine in KB (/proc/meminfo)."
  def kernel_kb do
    s = File.read!("/proc/meminfo")

    for key <- ~w(PageTables KernelStack), reduce: 0 do
      acc ->
        [_, kb] = Regex.run(~r/^#{key}:\s+(\d+)/m, s)
        acc + String.to_integer(kb)
    end
  end

  @doc """
  The OS pid of MuonTrap's resident spawner (started if it is not yet),
  or nil with a transport that has none (then the rows that need it are
  skipped).
  """
  def spawner do
    if spawner_transport?() do
      {_, 0} = MuonTrap.cmd("true", [])
      MuonTrap.Nif.spawner_pid()
    end
  end

  @doc "True if this build has the resident spawner (`MuonTrap.Nif.spawner_pid/0`)."
  def spawner_transport? do
    Code.ensure_loaded?(MuonTrap.Nif) and function_exported?(MuonTrap.Nif, :spawner_pid, 0)
  end

  @doc "True if /proc/`pid` is gone (a zombie still counts as there)."
  def gone?(pid), do: not File.exists?("/proc/#{pid}")

  @doc """
  Every live descendant of this BEAM except erl_child_setup, and every
  live descendant of MuonTrap's resident spawner (a child of init, which
  stays while the BEAM runs): the supervisors and their commands. The
  spawner's standby supervisor (a child without a command) stays with it.
  """
  def leftovers do
    Process.sleep(200)
    me = System.pid() |> String.to_integer()
    spawner = if spawner_transport?(), do: MuonTrap.Nif.spawner_pid()
    standbys = children(spawner) -- supervisors(spawner)

    (descendants(me) ++ if(spawner, do: descendants(spawner), else: []))
    |> Enum.uniq()
    |> Enum.reject(&(&1 == spawner or &1 in standbys))
    |> Enum.filter(&alive?/1)
    |> Enum.map(fn pid -> {pid, String.trim(File.read!("/proc/#{pid}/comm"))} end)
    |> Enum.reject(fn {_, comm} -> comm in ["erl_child_setup", "inet_gethost", "epmd"] end)
  rescue
    File.Error -> []
  end
end
