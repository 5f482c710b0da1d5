defmodule MuonTrap.DaemonRelaunchTest do
  # `relaunch:` with real commands: the doubling delay and its cap, the
  # count that starts again after a command stayed up, exhausted retries
  # stopping with today's reason, what is not a failure, signals and the
  # watchdog, readiness after a relaunch, and a real supervisor whose
  # restart intensity a flapping command no longer uses up.
  #
  # Each command appends a line per launch to a file of its own (with the
  # time it started, in ns), so launches are counted even after the
  # daemon is gone. Not async: the gaps between launches are timed.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  doctest MuonTrap.Daemon.Relaunch

  defp launch_file do
    path = Path.join(System.tmp_dir!(), "muontrap_launches_#{marker()}")
    on_exit(fn -> File.rm(path) end)
    path
  end

  # The shell script's first step: record this launch, and set $n to the
  # number of launches before it.
  defp record(file),
    do: ~s{f="#{file}"; n=$(cat "$f" 2>/dev/null | wc -l); date +%s%N >> "$f"; }

  defp launches(file) do
    case File.read(file) do
      {:ok, text} -> text |> String.split("\n", trim: true) |> Enum.map(&String.to_integer/1)
      {:error, :enoent} -> []
    end
  end

  defp gaps_ms(file) do
    file
    |> launches()
    |> Enum.chunk_every(2, 1, :discard)
    |> Enum.map(fn [a, b] -> div(b - a, 1_000_000) end)
  end

  # The port binary may still be on its way out after its EXIT.
  defp assert_none_left(m),
    do: wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "every process of #{m} to go")

  defp start(script, opts) do
    {:ok, pid} = Daemon.start_link("sh", ["-c", script], opts)
    ref = Process.monitor(pid)
    {pid, ref}
  end

  defp await_down(ref, timeout \\ 20_000) do
    receive do
      {:DOWN, ^ref, :process, _, reason} -> reason
    after
      timeout -> flunk("the daemon did not stop")
    end
  end

  setup do
    Process.flag(:trap_exit, true)
    :ok
  end

  test "the delay doubles up to :max_delay; spent retries stop with today's reason" do
    file = launch_file()

    log =
      capture_log(fn ->
        {_pid, ref} = start(record(file) <> "exit 3", relaunch: [retries: 4, max_delay: 300])
        assert await_down(ref) == :error_exit_status
      end)

    assert length(launches(file)) == 5
    [g1, g2, g3, g4] = gaps_ms(file)
    # Never sooner than the delay: 100, 200, then capped at 300.
    assert g1 >= 100 and g2 >= 200 and g3 >= 300 and g4 >= 300, inspect(gaps_ms(file))
    # Uncapped, the last two would be 400 and 800.
    assert g4 < 800, inspect(gaps_ms(file))
    assert log =~ "relaunching in 100 ms (relaunch 1)"
    assert log =~ "relaunching in 300 ms (relaunch 4)"
    assert log =~ "no relaunch left after 4 in a row"
  end

  test "a successful exit, or a status mapped to :normal, is not relaunched" do
    file = launch_file()

    capture_log(fn ->
      {_pid, ref} = start(record(file) <> "exit 0", relaunch: [retries: 5, delay: 10])
      assert await_down(ref) == :normal
    end)

    assert length(launches(file)) == 1

    file = launch_file()

    capture_log(fn ->
      to_reason = fn 3 -> :normal end

      {_pid, ref} =
        start(record(file) <> "exit 3",
          relaunch: [retries: 5, delay: 10],
          exit_status_to_reason: to_reason
        )

      assert await_down(ref) == :normal
    end)

    assert length(launches(file)) == 1
  end

  test "the count starts again once a command stayed up for :max_delay" do
    file = launch_file()

    capture_log(fn ->
      # One retry only, but every command stays up longer than max_delay.
      opts = [relaunch: [retries: 1, delay: 20, max_delay: 200]]
      {pid, ref} = start(record(file) <> "sleep 0.4; exit 1", opts)
      wait_until(fn -> length(launches(file)) >= 4 end, 20_000, "four launches")
      assert Process.alive?(pid)
      assert Daemon.statistics(pid).relaunch_count >= 3
      GenServer.stop(pid)
      assert await_down(ref) == :normal
    end)
  end

  @tag :linux
  test "a death by a signal and a watchdog expiry are failures" do
    file = launch_file()

    capture_log(fn ->
      {_pid, ref} = start(record(file) <> "kill -KILL $$", relaunch: [retries: 1, delay: 10])
      assert await_down(ref) == :error_exit_status
    end)

    assert length(launches(file)) == 2

    file = launch_file()
    m = marker()

    capture_log(fn ->
      opts = [watchdog: 200, relaunch: [retries: 1, delay: 10]]
      {_pid, ref} = start(record(file) <> "exec #{helper()} sleep #{m}", opts)
      assert await_down(ref) == :watchdog_timeout
    end)

    assert length(launches(file)) == 2
    assert_none_left(m)
  end

  @tag :linux
  test "start_link fails without a relaunch when the first command is never ready" do
    file = launch_file()

    capture_log(fn ->
      opts = [ready: :notify, relaunch: [retries: 3, delay: 10]]

      assert {:error, {:exit_status, 1}} =
               Daemon.start_link("sh", ["-c", record(file) <> "exit 1"], opts)
    end)

    assert length(launches(file)) == 1
  end

  @tag :linux
  test "after a relaunch: :relaunching, then :starting until the new command is ready" do
    file = launch_file()
    m = marker()
    # The first command is ready, then fails; the next one is ready late.
    script =
      record(file) <>
        "if [ $n -eq 0 ]; then systemd-notify --ready; sleep 0.2; exit 1; fi; " <>
        "sleep 0.5; systemd-notify --ready; exec #{helper()} sleep #{m}"

    capture_log(fn ->
      opts = [ready: :notify, relaunch: [retries: 2, delay: 300]]
      {pid, ref} = start(script, opts)
      assert Daemon.status(pid).state == :ready
      first = Daemon.command_os_pid(pid)
      wait_until(fn -> Daemon.status(pid).state == :relaunching end, 5_000, ":relaunching")
      wait_until(fn -> Daemon.status(pid).state == :starting end, 5_000, ":starting")
      wait_until(fn -> Daemon.status(pid).state == :ready end, 10_000, "ready again")
      assert Daemon.command_os_pid(pid) not in [first, :error]
      assert Daemon.statistics(pid).relaunch_count == 1
      GenServer.stop(pid)
      assert await_down(ref) == :normal
    end)

    assert_none_left(m)
  end

  @tag :linux
  test "a relaunched command not ready within :ready_timeout is a failure" do
    file = launch_file()
    m = marker()

    script =
      record(file) <>
        "if [ $n -eq 0 ]; then systemd-notify --ready; sleep 0.2; exit 1; fi; " <>
        "exec #{helper()} sleep #{m}"

    log =
      capture_log(fn ->
        opts = [ready: :notify, ready_timeout: 1_000, relaunch: [retries: 1, delay: 10]]
        {_pid, ref} = start(script, opts)
        assert await_down(ref) == :ready_timeout
      end)

    assert length(launches(file)) == 2
    assert log =~ "not ready within 1000 ms"
    assert_none_left(m)
  end

  test "a flapping command does not use up its supervisor's restart intensity" do
    # Eight failures in a row, then a command that stays up.
    script = fn file -> record(file) <> "if [ $n -lt 8 ]; then exit 1; fi; exec sleep 30" end

    spec = fn file, opts ->
      Supervisor.child_spec({Daemon, ["sh", ["-c", script.(file)], opts]}, id: :daemon)
    end

    capture_log(fn ->
      file = launch_file()
      opts = [relaunch: [retries: 10, delay: 10, max_delay: 40]]
      {:ok, sup} = Supervisor.start_link([spec.(file, opts)], strategy: :one_for_one)
      [{:daemon, daemon, _, _}] = Supervisor.which_children(sup)
      wait_until(fn -> length(launches(file)) == 9 end, 20_000, "nine launches")
      assert Process.alive?(sup)
      assert [{:daemon, ^daemon, _, _}] = Supervisor.which_children(sup)
      assert Daemon.statistics(daemon).relaunch_count == 8
      Supervisor.stop(sup)

      # Without :relaunch, the same command takes the supervisor down.
      file = launch_file()
      {:ok, sup} = Supervisor.start_link([spec.(file, [])], strategy: :one_for_one)
      ref = Process.monitor(sup)
      assert await_down(ref) == :shutdown
      assert length(launches(file)) == 4
    end)
  end

  test "bad :relaunch values raise ArgumentError naming the option" do
    for bad <- [
          [],
          [delay: 10],
          [retries: -1],
          [retries: 1, delay: 0],
          [retries: 1, delay: 100, max_delay: 50],
          [retries: 1, backoff: 2],
          :yes
        ] do
      assert_raise ArgumentError, ~r/invalid option :relaunch with value/, fn ->
        Daemon.start_link("true", [], relaunch: bad)
      end
    end
  end
end
