defmodule MuonTrap.DaemonReportTest do
  # What a daemon's crash reports and :sys.get_status/1 show: a short
  # summary (command, pids, state, last exit), not its internal structs.
  # Not async: the crash reports are logged by the daemons, and
  # capture_log takes every process's log.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon
  alias MuonTrap.Daemon.{Report, Server}

  # What the whole state used to show: none of it may reach a report.
  @internals [
    "%MuonTrap.",
    "pipes",
    "buffers",
    "readiness",
    "signals",
    "open_files",
    "#Function<"
  ]

  setup do
    path = Path.join(System.tmp_dir!(), "muontrap_report_#{System.unique_integer([:positive])}")
    File.write!(path, "#!/bin/sh\necho never\n")
    # Not executable: the exec fails, as a missing interpreter would.
    File.chmod!(path, 0o644)
    on_exit(fn -> File.rm(path) end)
    %{path: path}
  end

  test "a daemon crash-looping under a supervisor logs short reports", %{path: path} do
    for {command, args, last_exit} <- [
          {path, ["--flag", "value"], "last_exit: {:exit_status, 127}"},
          {"sh", ["-c", "exit 3"], "last_exit: {:exit_status, 3}"}
        ] do
      log = capture_log(fn -> supervise_until_given_up(command, args) end)
      reports = reports(log)
      # max_restarts: 2, so three attempts, each reported.
      assert length(reports) == 3, log

      for report <- reports do
        [state] = Regex.run(~r/^State: .*$/m, report)
        assert byte_size(state) < 600, state
        assert length(String.split(report, "\n", trim: true)) < 15, report
        assert state =~ ~s(command: "#{command}")
        assert state =~ inspect(Enum.join(args, " "))
        assert state =~ "state: :exited"
        assert state =~ last_exit
        assert state =~ ~r/os_pid: \d+/
        for internal <- @internals, do: refute(report =~ internal, report)
      end
    end
  end

  test ":sys.get_status/1 shows the summary; :sys.get_state/1 the whole state" do
    {:ok, pid} = Daemon.start_link(helper(), ["sleep"], log_output: :info)
    wait_until(fn -> Daemon.status(pid).state == :running end)
    command_pid = Daemon.command_os_pid(pid)

    {:status, ^pid, _module, [_pdict, _sys_state, _parent, _debug, items]} = :sys.get_status(pid)
    [summary] = for {:data, [{~c"State", s}]} <- items, do: s

    assert %{command: command, args: "sleep", state: :running, last_exit: nil} = summary
    assert command == helper()
    assert summary.command_os_pid == command_pid
    assert summary.os_pid == Daemon.os_pid(pid)
    assert byte_size(inspect(summary)) < 300
    for internal <- @internals, do: refute(inspect(items) =~ internal)

    # Untouched: tests and users may rely on it.
    assert %{pipes: %MuonTrap.Daemon.Pipes{}, command_os_pid: ^command_pid} = :sys.get_state(pid)
    GenServer.stop(pid)
  end

  test "format_status/2, for OTPs before 25, gives the same summary" do
    {:ok, pid} = Daemon.start_link(helper(), ["sleep"], [])
    wait_until(fn -> Daemon.status(pid).state == :running end)
    state = :sys.get_state(pid)
    summary = Report.summary(state)

    assert Server.format_status(:terminate, [[], state]) == summary
    assert Server.format_status(:normal, [[], state]) == [data: [{~c"State", summary}]]
    assert %{state: :running, command: _} = summary
    GenServer.stop(pid)
  end

  test "long arguments are cut, a stdin write's data is left out" do
    args = for i <- 1..1000, do: "argument-#{i}"
    summary = Report.summary(%{fake_state() | options: %{args: args}})
    assert summary.args =~ ~r/^argument-1 argument-2 .*\.\.\. \(1000 arguments\)$/
    assert byte_size(summary.args) < 250
    refute Map.has_key?(summary, :cgroup_path) or Map.has_key?(summary, :relaunch_count)

    summary =
      Report.summary(%{
        fake_state()
        | options: %{args: [], cgroup_path: "muontrap/x"},
          relaunch: %{count: 2},
          startup: %{readiness: %{state: :relaunching}},
          last_exit: {:exit_status, 137}
      })

    assert %{cgroup_path: "muontrap/x", relaunch_count: 2, state: :relaunching} = summary
    assert summary.last_exit == {:exit_status, 137}

    from = {self(), make_ref()}

    assert Report.message({:"$gen_call", from, {:write, [String.duplicate("x", 100_000)], 5}}) ==
             {:"$gen_call", from, {:write, {:iodata_bytes, 100_000}, 5}}

    # Anything else is shown as it is.
    assert Report.message({:select, make_ref(), make_ref(), :ready_input}) |> elem(0) == :select
  end

  defp fake_state do
    %{
      command: "cmd",
      options: %{args: []},
      channel: nil,
      os_pid: :error,
      command_os_pid: :error,
      last_exit: nil,
      error: nil,
      relaunch: nil,
      startup: %{readiness: %{state: :starting}}
    }
  end

  # The supervisor restarts the daemon twice, then gives up and exits.
  defp supervise_until_given_up(command, args) do
    Process.flag(:trap_exit, true)
    child = {Daemon, [command, args, [log_output: :info]]}
    {:ok, sup} = Supervisor.start_link([child], strategy: :one_for_one, max_restarts: 2)
    assert_receive {:EXIT, ^sup, :shutdown}, 15_000
    Process.flag(:trap_exit, false)
  end

  defp reports(log) do
    log
    |> String.split(~r/^.*\[error\] /m, trim: true)
    |> Enum.filter(&(&1 =~ ~r/^GenServer #PID<[\d.]+> terminating/))
  end
end
