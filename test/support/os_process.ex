defmodule MuonTrap.Test.OSProcess do
  @moduledoc false
  # Looks at real OS processes and cgroups through /proc and /sys, so tests
  # check what actually survives rather than what MuonTrap says.

  alias MuonTrap.Test.ProcFS

  @doc "Path to the multi-call test helper binary built by `mix compile` in the test env."
  def helper,
    do: Path.join([Mix.Project.build_path(), "muontrap_test_helper", "muontrap_test_helper"])

  @doc "The bytes `muontrap_test_helper print_bytes n` writes."
  def pattern(n) do
    block = :binary.list_to_bin(Enum.map(0..250, & &1))
    whole = :binary.copy(block, div(n, 251) + 1)
    binary_part(whole, 0, n)
  end

  @doc "True if `pid` exists and is not a zombie."
  def alive?(pid) do
    case ProcFS.read("/proc/#{pid}/stat") do
      {:ok, stat} ->
        # The state follows the parenthesized command name, which may contain spaces.
        [_, rest] = String.split(stat, ") ", parts: 2)
        not String.starts_with?(rest, ["Z", "X"])

      {:error, _} ->
        false
    end
  end

  @doc """
  OS pids of live processes whose command line contains `needle`, leaving
  out muontrap port binaries (their arguments hold the command line too).
  """
  def pids_matching(needle) do
    for "/proc/" <> pid <- ProcFS.pids(),
        {:ok, cmdline} <- [ProcFS.read("/proc/#{pid}/cmdline")],
        String.contains?(cmdline, needle),
        not port_binary?(pid),
        pid = String.to_integer(pid),
        alive?(pid),
        do: pid
  end

  @doc """
  OS pids of live processes whose command line contains `needle`, muontrap
  port binaries included: what must be gone once a test has stopped
  everything it started with `needle` in its command line.
  """
  def all_pids_matching(needle) do
    for "/proc/" <> pid <- ProcFS.pids(),
        {:ok, cmdline} <- [ProcFS.read("/proc/#{pid}/cmdline")],
        String.contains?(cmdline, needle),
        pid = String.to_integer(pid),
        alive?(pid),
        do: pid
  end

  defp port_binary?(pid) do
    case ProcFS.read_link("/proc/#{pid}/exe") do
      {:ok, exe} -> Path.basename(exe) == "muontrap"
      {:error, _} -> false
    end
  end

  @doc """
  Poll `fun` until it returns a truthy value; flunk after `timeout` ms. The
  default is generous: a condition that holds returns at once, and a busy
  machine (CI beside other builds) can take seconds to start a tree.
  """
  def wait_until(fun, timeout \\ 15_000, what \\ "condition") do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_wait(fun, deadline, what)
  end

  defp do_wait(fun, deadline, what) do
    cond do
      result = fun.() ->
        result

      System.monotonic_time(:millisecond) > deadline ->
        what = if is_function(what, 0), do: what.(), else: what
        ExUnit.Assertions.flunk("timed out waiting for #{what}")

      true ->
        Process.sleep(10)
        do_wait(fun, deadline, what)
    end
  end

  @doc "The BEAM's own descriptors that point at `link` (e.g. \"pipe:[1234]\")."
  def beam_fds_on(link) do
    dir = "/proc/#{System.pid()}/fd"

    for fd <- ProcFS.ls!(dir),
        fd = Path.join(dir, fd),
        ProcFS.read_link(fd) == {:ok, link},
        do: fd
  end

  @doc "Wait until none of `pids` is alive."
  def wait_all_dead(pids, timeout \\ 15_000) do
    wait_until(
      fn -> Enum.all?(pids, &(not alive?(&1))) end,
      timeout,
      "OS pids #{inspect(pids)} to die"
    )
  end

  @doc "A unique marker to put in a command line so a test can find its own processes."
  def marker, do: "mt#{System.unique_integer([:positive])}x#{:rand.uniform(1_000_000)}"

  @doc "The v2 cgroup of this VM relative to the mount, or nil without a usable v2 hierarchy."
  def v2_own_cgroup do
    with {:ok, text} <- ProcFS.read("/proc/self/cgroup"),
         ["0::" <> path] <- Enum.filter(String.split(text, "\n"), &String.starts_with?(&1, "0::")) do
      String.trim_leading(path, "/")
    else
      _ -> nil
    end
  end

  @doc "True when /sys/fs/cgroup is a cgroup v2 mount offering the cpu, memory and pids controllers."
  def cgroup_v2_ready? do
    case ProcFS.read("/sys/fs/cgroup/cgroup.controllers") do
      {:ok, text} -> Enum.all?(~w(cpu memory pids), &(&1 in String.split(text)))
      _ -> false
    end
  end

  @doc """
  True when cpu, memory and pids limits can be set in groups beneath this
  VM's own cgroup: pure v2 with the controllers, or v1 hierarchies (with
  cpuacct) on a v1 or hybrid host.
  """
  def cgroup_limits_ready? do
    case MuonTrap.Cgroup.layout() do
      %{kind: kind} when kind in [:v1, :hybrid] ->
        Enum.all?(~w(cpu cpuacct memory pids), &(&1 in MuonTrap.Cgroup.v1_controllers()))

      %{kind: :v2} ->
        cgroup_v2_ready?()

      _ ->
        false
    end
  end

  # write(2)'s number, which /proc/PID/syscall starts with while a process
  # sleeps in it.
  @write_syscall (case to_string(:erlang.system_info(:system_architecture)) do
                    "x86_64" <> _ -> "1"
                    "i" <> _ -> "4"
                    "arm-" <> _ -> "4"
                    _generic -> "64"
                  end)

  # poll(2)'s and ppoll(2)'s numbers (arm64 and the generic table have
  # only ppoll).
  @poll_syscalls (case to_string(:erlang.system_info(:system_architecture)) do
                    "x86_64" <> _ -> ["7", "271"]
                    "i" <> _ -> ["168", "309"]
                    "arm-" <> _ -> ["168", "336"]
                    _generic -> ["73"]
                  end)

  @doc "True if OS process `pid` is asleep in write(2) (for example on a full pipe)."
  def blocked_in_write?(pid), do: in_syscall?(pid, [@write_syscall])

  @doc "True if OS process `pid` is asleep in poll(2) or ppoll(2)."
  def blocked_in_poll?(pid), do: in_syscall?(pid, @poll_syscalls)

  defp in_syscall?(pid, numbers) do
    case ProcFS.read("/proc/#{pid}/syscall") do
      {:ok, text} -> hd(String.split(text)) in numbers
      _ -> false
    end
  end

  @doc "Bytes OS process `pid` has written so far (`wchar` of /proc/PID/io)."
  def written(pid) do
    {:ok, io} = ProcFS.read("/proc/#{pid}/io")
    [_, n] = Regex.run(~r/^wchar: (\d+)$/m, io)
    String.to_integer(n)
  end

  @doc """
  True if a caller's mailbox `messages` hold no output: at most one select
  notice (one may legitimately be in flight) and the port's STARTED frame,
  which comes after the hand-over and may be overtaken by the first output.
  """
  def no_output_queued?(messages) do
    {notices, others} = Enum.split_with(messages, &match?({:select, _, _, :ready_input}, &1))
    arms = Enum.count(others, &match?({:timeout, _, :muontrap_arm}, &1))

    length(notices) <= 1 and arms <= 1 and
      Enum.all?(others, fn
        {port, {:data, frame}} when is_port(port) ->
          match?({:started, _}, MuonTrap.Protocol.decode(frame))

        # A caller's :timeout that fired while it is stuck is not output,
        # nor the timer that has the engine read the channel (one).
        {:timeout, ref, tag} when is_reference(ref) and tag in [:muontrap_timeout, :muontrap_arm] ->
          true

        _other ->
          false
      end)
  end

  @doc "The OS pid of a daemon's command, once it runs."
  def command_pid(daemon) do
    wait_until(
      fn ->
        pid = MuonTrap.Daemon.command_os_pid(daemon)
        is_integer(pid) && pid
      end,
      15_000,
      "the daemon's command to start"
    )
  end
end
