defmodule MuonTrap.Test.Faults do
  @moduledoc false
  # Helpers of the fault-injection tests (test/muontrap/faults_*_test.exs):
  # signals to OS processes, the BEAM's descriptor count, cgroup directories
  # seen from outside, commands that announce their stop, and child BEAMs
  # that run MuonTrap from this build.

  import ExUnit.Assertions
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Cgroup
  alias MuonTrap.Test.ProcFS

  @doc "Send `signal` (\"KILL\", \"STOP\", ...) to OS process `pid`."
  def signal(pid, signal) do
    {_, 0} = System.cmd("kill", ["-#{signal}", "#{pid}"], stderr_to_stdout: true)
    :ok
  end

  @doc """
  OS pids of the live muontrap port binaries running `needle`: whose
  program (a direct child) has `needle` in its command line, or in its
  cgroup (a child held before exec still has the port's command line).
  The port binary's own command line holds no option nor program.
  """
  def port_binaries_matching(needle) do
    for "/proc/" <> pid <- ProcFS.pids(),
        about?(pid, "cmdline", needle) or about?(pid, "cgroup", needle),
        port = parent(pid),
        port_binary?(port),
        uniq: true,
        do: port
  end

  defp about?(pid, file, needle) do
    case ProcFS.read("/proc/#{pid}/#{file}") do
      {:ok, text} -> String.contains?(text, needle)
      {:error, _} -> false
    end
  end

  defp parent(pid) do
    with {:ok, stat} <- ProcFS.read("/proc/#{pid}/stat"),
         [_, rest] <- String.split(stat, ") ", parts: 2),
         [_state, ppid | _] <- String.split(rest, " ") do
      String.to_integer(ppid)
    else
      _ -> 0
    end
  end

  defp port_binary?(pid) do
    alive?(pid) and
      match?(
        {:ok, "muontrap"},
        with({:ok, exe} <- ProcFS.read_link("/proc/#{pid}/exe"), do: {:ok, Path.basename(exe)})
      )
  end

  @doc "The one port binary running `needle`, once it runs."
  def port_binary(needle) do
    wait_until(
      fn ->
        case port_binaries_matching(needle) do
          [pid] -> pid
          _ -> nil
        end
      end,
      15_000,
      "the port binary of #{needle}"
    )
  end

  @doc """
  The port binary (supervisor) running `needle`, once it has reported
  STARTED: it polls only after that. One killed before would leave the
  BEAM without the program's pid, so without its process group: the
  stage before STARTED (docs/protocol.md, "Deaths"), not one "while
  streaming".
  """
  def started_port_binary(needle) do
    pid = port_binary(needle)
    wait_until(fn -> blocked_in_poll?(pid) end, 15_000, "the supervisor to report STARTED")
    pid
  end

  @doc "How many descriptors OS process `pid` (default: this BEAM) has open."
  def fd_count(pid \\ System.pid()), do: length(ProcFS.ls!("/proc/#{pid}/fd"))

  @doc """
  Wait until this BEAM has no more descriptors open than `baseline`
  (something else may close one meanwhile, never open one for good).
  """
  def assert_fds_back(baseline) do
    wait_until(fn -> fd_count() <= baseline end, 10_000, fn ->
      "the BEAM's descriptors back to #{baseline}, have #{fd_count()}"
    end)
  end

  @doc "Wait until nothing with `needle` in its command line is left, port binaries included."
  def assert_nothing_left(needle) do
    wait_until(fn -> all_pids_matching(needle) == [] end, 15_000, fn ->
      "every process of #{needle} to be gone: #{inspect(all_pids_matching(needle))}"
    end)
  end

  @doc """
  A marker (`OSProcess.marker/0`) whose processes are SIGKILLed at the end
  of the test if any are left: a failed test must not leave a stopped
  port binary holding `mix test`'s output open.
  """
  def fault_marker do
    m = marker()

    ExUnit.Callbacks.on_exit(fn ->
      for pid <- all_pids_matching(m),
          do: System.cmd("kill", ["-KILL", "#{pid}"], stderr_to_stdout: true)
    end)

    m
  end

  @doc "The sub-groups of the cgroup2 group `path` (names, not paths)."
  def cgroup2_children(path) do
    dir = cgroup2_dir(path)
    for name <- ProcFS.ls!(dir), ProcFS.dir?(Path.join(dir, name)), do: name
  end

  @doc """
  Run `sh -c "echo up; exec helper sleep <needle>"` with cmd/3 and
  `opts` in a process of its own, SIGSTOP its port binary once "up" came,
  then kill the caller. Returns the stopped port binary's OS pid.
  """
  def kill_caller_of_stopped_port(needle, opts) do
    parent = self()

    caller =
      spawn(fn ->
        MuonTrap.cmd(
          "sh",
          ["-c", "echo up; exec #{helper()} sleep #{needle}"],
          [into: %Collect{to: parent}] ++ opts
        )
      end)

    assert_receive {:collected, "up\n"}, 15_000
    port = port_binary(needle)
    signal(port, "STOP")
    wait_until(fn -> stopped?(port) end, 5_000, "the port binary to stop")
    Process.exit(caller, :kill)
    port
  end

  @doc "True if OS process `pid` is stopped (state T)."
  def stopped?(pid) do
    case ProcFS.read("/proc/#{pid}/stat") do
      {:ok, stat} ->
        stat |> String.split(") ", parts: 2) |> List.last() |> String.starts_with?("T")

      _ ->
        false
    end
  end

  @doc """
  A shell script that prints `up`, then writes `file` when SIGTERM arrives
  and lives on until SIGKILL: the port's stop sequence has begun once
  `file` exists. Its command line holds `file`'s name (from `tmp_file/1`,
  so the test's marker).
  """
  def stopping_command(file) do
    # No "Terminated" from the shell when the stop signal hits its sleep.
    "exec 2>/dev/null; trap 'echo term > #{file}' TERM; echo up; while :; do sleep 0.02; done"
  end

  @doc "A fresh path for a file a command writes."
  def tmp_file(needle), do: Path.join(System.tmp_dir!(), "muontrap_faults_#{needle}")

  ## cgroups

  @doc """
  True when a cgroup2 hierarchy has this BEAM's group, with cgroup.freeze
  and cgroup.kill (Linux 5.14), to make groups without controllers in.
  """
  def cgroup2_usable? do
    case Cgroup.layout().v2 do
      %{mount: mount, own: own} when own != nil ->
        probe = Path.join([mount, own, "muontrap_probe_#{marker()}"])

        with :ok <- File.mkdir(probe) do
          usable? =
            Enum.all?(~w(cgroup.freeze cgroup.kill), &ProcFS.exists?(Path.join(probe, &1)))

          File.rmdir(probe)
          usable?
        else
          _ -> false
        end

      _ ->
        false
    end
  end

  @doc "The group `path`'s directory in every hierarchy, beneath this BEAM's own cgroup."
  def cgroup_dirs(path) do
    layout = Cgroup.layout()

    for h <- List.wrap(layout.v2) ++ layout.v1,
        h.own != nil,
        do: Path.join([h.mount, h.own, path])
  end

  @doc "The group `path`'s directory in the cgroup2 hierarchy, beneath this BEAM's own cgroup."
  def cgroup2_dir(path) do
    %{mount: mount, own: own} = Cgroup.layout().v2
    Path.join([mount, own, path])
  end

  @doc "Wait until the group `path` is gone from every hierarchy."
  def assert_cgroup_removed(path) do
    wait_until(
      fn -> Enum.all?(cgroup_dirs(path), &(not ProcFS.exists?(&1))) end,
      15_000,
      fn ->
        "#{path} to be removed: #{inspect(Enum.filter(cgroup_dirs(path), &ProcFS.exists?/1))}"
      end
    )
  end

  @doc "Freeze (`true`) or thaw the cgroup2 group `path` through its cgroup.freeze."
  def freeze(path, frozen?) do
    :ok =
      File.write(Path.join(cgroup2_dir(path), "cgroup.freeze"), if(frozen?, do: "1", else: "0"))
  end

  @doc "The OS pids in the cgroup2 group `path` (none if it is gone)."
  def cgroup_procs(path) do
    case ProcFS.read(Path.join(cgroup2_dir(path), "cgroup.procs")) do
      {:ok, text} -> text |> String.split() |> Enum.map(&String.to_integer/1)
      {:error, _} -> []
    end
  end

  @doc """
  A cgroup base made by the test in cgroup2 (and nowhere else), removed at
  the end of the test with whatever is left beneath it.
  """
  def make_cgroup2_base(needle) do
    base = "muontrap_faults_#{needle}"
    :ok = File.mkdir(cgroup2_dir(base))
    ExUnit.Callbacks.on_exit(fn -> remove_tree(cgroup2_dir(base)) end)
    base
  end

  # Thawed first: a frozen group's processes would keep it busy.
  defp remove_tree(dir) do
    if ProcFS.dir?(dir) do
      File.write(Path.join(dir, "cgroup.freeze"), "0")

      for sub <- ProcFS.ls!(dir),
          ProcFS.dir?(Path.join(dir, sub)),
          do: remove_tree(Path.join(dir, sub))

      File.write(Path.join(dir, "cgroup.kill"), "1")
      wait_until(fn -> File.rmdir(dir) in [:ok, {:error, :enoent}] end, 5_000, "#{dir} removed")
    end
  end

  ## Child BEAMs

  @doc """
  Start another BEAM running `script` (Elixir code, with this build's
  muontrap on its code path), under `sh -c PREFIX; exec elixir ...` so
  that a `prefix` such as `ulimit -n 64` applies to it. Returns the port,
  to read the lines it prints with `child_line/3`, and its OS pid; it is
  SIGKILLed at the end of the test if it is still there. `wrapper` goes
  before `elixir` (`setpriv ...` to run it as another user).
  """
  def start_child_beam(script, prefix \\ ":", wrapper \\ "") do
    ebin = Path.join([Mix.Project.build_path(), "lib", "muontrap", "ebin"])
    script = "IO.puts(\"beam \" <> System.pid())\n" <> script
    elixir = System.find_executable("elixir")
    file = Path.join(System.tmp_dir!(), "muontrap_child_#{marker()}.exs")
    File.write!(file, script)
    ExUnit.Callbacks.on_exit(fn -> File.rm(file) end)

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 65_536},
        args: ["-c", "#{prefix}; exec #{wrapper} #{elixir} -pa #{ebin} #{file}"]
      ])

    beam = child_line(port, "beam ", 60_000)

    ExUnit.Callbacks.on_exit(fn -> System.cmd("kill", ["-KILL", beam], stderr_to_stdout: true) end)

    {port, String.to_integer(beam)}
  end

  @doc """
  The next line the child BEAM prints that starts with `prefix`, without
  it; other lines (a log line, a warning) are skipped.
  """
  def child_line(port, prefix, timeout \\ 30_000, skipped \\ []) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        if String.starts_with?(line, prefix),
          do: String.replace_prefix(line, prefix, ""),
          else: child_line(port, prefix, timeout, [line | skipped])

      {^port, {:exit_status, status}} ->
        flunk("the child BEAM exited with status #{status}:\n#{said(skipped)}")
    after
      timeout ->
        flunk(
          "no line \"#{prefix}...\" from the child BEAM within #{timeout} ms:\n#{said(skipped)}"
        )
    end
  end

  defp said(skipped), do: skipped |> Enum.reverse() |> Enum.join("\n")
end
