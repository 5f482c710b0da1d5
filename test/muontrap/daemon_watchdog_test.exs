defmodule MuonTrap.DaemonWatchdogTest do
  # The sd_notify watchdog (`:watchdog`) with real programs: pings keep
  # the command alive, silence or WATCHDOG=trigger terminate its tree and
  # stop the daemon with :watchdog_timeout (a supervisor restarts it),
  # WATCHDOG_USEC= changes the interval, and with ready: :notify the
  # timer starts at READY=1. Nothing is left behind. Also
  # EXTEND_TIMEOUT_USEC=, whose ready deadline runs from the start too.
  #
  # Not async: a 300 ms watchdog runs from exec (and a ready deadline
  # from start_link), and the suite's async stress tests (a thousand
  # commands at once) can hold a Python sender up for longer than that.
  use ExUnit.Case, async: false

  # sd_notify and the watchdog need Linux (docs/portability.md).
  @moduletag :linux

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Notify, OSProcess}

  alias MuonTrap.Daemon

  defp forward(pid \\ self()), do: {:tagged, fn stream, line -> send(pid, {stream, line}) end}

  # Nothing with the marker is left: command, descendants, port binary.
  defp assert_none_left(m),
    do: wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "every process of #{m} to go")

  defp stop_and_check(daemon, m) do
    GenServer.stop(daemon)
    assert_none_left(m)
  end

  # A shell that records its pid in `pidfile` (appending: one line per
  # start) and then execs `exec`: the pids are known without asking a
  # daemon that may be gone already.
  defp recorded(pidfile, exec), do: ["-c", ~s(echo $$ >> "$0"; exec #{exec}), pidfile]

  defp pidfile(m) do
    path = Path.join(System.tmp_dir!(), "muontrap_pids_#{m}")
    on_exit(fn -> File.rm(path) end)
    path
  end

  defp recorded_pids(path) do
    case File.read(path) do
      {:ok, text} -> text |> String.split() |> Enum.map(&String.to_integer/1)
      {:error, :enoent} -> []
    end
  end

  defp ms_since(t0), do: System.monotonic_time(:millisecond) - t0

  defp now, do: System.monotonic_time(:millisecond)

  # Pings every 50 ms, saying so after each.
  @pinger """
  n = 0
  while True:
      notify("WATCHDOG=1")
      n += 1
      say("ping %d" % n)
      time.sleep(0.05)
  """

  # Take the pinger's lines until `ms` have passed since `t0`, checking
  # the daemon is alive and :running at each: the watchdog never fired.
  defp pings_until(daemon, t0, ms, state) do
    if ms_since(t0) < ms do
      assert_receive {:stdout, "ping " <> _}, 2_000
      assert Process.alive?(daemon)
      assert Daemon.status(daemon).state == state
      pings_until(daemon, t0, ms, state)
    end
  end

  test "WATCHDOG=1 every 50 ms keeps a 300 ms watchdog from firing" do
    Process.flag(:trap_exit, true)
    m = marker()
    {py, args} = python(@pinger, m)
    t0 = now()
    {:ok, pid} = Daemon.start_link(py, args, watchdog: 300, logger_fun: forward())
    pings_until(pid, t0, 1_500, :running)
    stop_and_check(pid, m)
    refute_received {:EXIT, ^pid, :watchdog_timeout}
  end

  describe "expiry" do
    test "no WATCHDOG=1: the tree is terminated, the daemon stops with :watchdog_timeout" do
      Process.flag(:trap_exit, true)
      m = marker()
      pids = pidfile(m)

      log =
        capture_log(fn ->
          t0 = now()

          {:ok, pid} =
            Daemon.start_link("sh", recorded(pids, "#{helper()} sleep #{m}"), watchdog: 300)

          assert_receive {:EXIT, ^pid, :watchdog_timeout}, 10_000
          elapsed = ms_since(t0)
          assert elapsed >= 280, "fired after #{elapsed} ms"
          assert elapsed < 10_000
          # The daemon stops only once its tree is gone.
          assert [sleeper] = recorded_pids(pids)
          refute alive?(sleeper)
        end)

      assert log =~ "watchdog timeout (no WATCHDOG=1 within the interval)"
      assert_none_left(m)
    end

    test "under a Supervisor the daemon is restarted" do
      m = marker()
      pids = pidfile(m)

      log =
        capture_log(fn ->
          spec =
            Supervisor.child_spec(
              {Daemon, ["sh", recorded(pids, "#{helper()} sleep #{m}"), [watchdog: 500]]},
              id: :watched,
              restart: :permanent
            )

          {:ok, sup} = Supervisor.start_link([spec], strategy: :one_for_one, max_restarts: 20)
          [{:watched, first, _, _}] = Supervisor.which_children(sup)
          ref = Process.monitor(first)
          assert_receive {:DOWN, ^ref, :process, ^first, :watchdog_timeout}, 10_000

          # A new daemon, and a new command in it.
          wait_until(fn ->
            match?(
              [{:watched, pid, _, _}] when is_pid(pid) and pid != first,
              Supervisor.which_children(sup)
            )
          end)

          [first_os, second_os | _] =
            wait_until(fn -> match?([_, _ | _], recorded_pids(pids)) && recorded_pids(pids) end)

          assert second_os != first_os
          refute alive?(first_os)
          Supervisor.stop(sup)
        end)

      assert log =~ "watchdog timeout"
      assert_none_left(m)
      assert Enum.all?(recorded_pids(pids), &(not alive?(&1)))
    end
  end

  test "WATCHDOG=trigger stops the daemon at once, well before the interval" do
    Process.flag(:trap_exit, true)
    m = marker()
    {py, args} = python(~s[notify("WATCHDOG=trigger")\ntime.sleep(1000)\n], m)

    log =
      capture_log(fn ->
        t0 = now()
        {:ok, pid} = Daemon.start_link(py, args, watchdog: 10_000)
        assert_receive {:EXIT, ^pid, :watchdog_timeout}, 5_000
        assert ms_since(t0) < 5_000
      end)

    assert log =~ "watchdog timeout (WATCHDOG=trigger)"
    assert_none_left(m)
  end

  test "WATCHDOG_USEC= sets a new interval: 2 s instead of 300 ms" do
    Process.flag(:trap_exit, true)
    m = marker()
    {py, args} = python(~s[notify("WATCHDOG_USEC=2000000")\nsay("sent")\ntime.sleep(1000)\n], m)

    log =
      capture_log(fn ->
        t0 = now()
        {:ok, pid} = Daemon.start_link(py, args, watchdog: 300, logger_fun: forward())
        assert_receive {:stdout, "sent"}
        # Well past 300 ms: still alive.
        refute_receive {:EXIT, ^pid, _}, 1_000
        assert Process.alive?(pid)
        # The new interval runs out in its turn, 2 s after the datagram
        # (which came after start_link).
        assert_receive {:EXIT, ^pid, :watchdog_timeout}, 10_000
        elapsed = ms_since(t0)
        assert elapsed >= 1_950, "fired #{elapsed} ms after start_link"
      end)

    assert log =~ "watchdog timeout"
    assert_none_left(m)
  end

  test "with ready: :notify the timer starts at READY=1, not at exec" do
    Process.flag(:trap_exit, true)
    m = marker()
    {py, args} = python("time.sleep(0.8)\nnotify(\"READY=1\")\n" <> @pinger, m)
    t0 = now()

    assert {:ok, pid} =
             Daemon.start_link(py, args, ready: :notify, watchdog: 300, logger_fun: forward())

    assert ms_since(t0) >= 750
    t1 = now()
    pings_until(pid, t1, 1_000, :ready)
    stop_and_check(pid, m)
    refute_received {:EXIT, ^pid, :watchdog_timeout}
  end

  describe "before ready" do
    test "the watchdog firing while starting: {:error, :watchdog_timeout}, the caller lives" do
      m = marker()
      # A watchdog before READY=1 (WATCHDOG_USEC= enables it), then silence.
      {py, args} = python(~s[notify("WATCHDOG_USEC=200000")\ntime.sleep(1000)\n], m)
      test = self()

      log =
        capture_log(fn ->
          caller =
            spawn(fn ->
              result = Daemon.start_link(py, args, ready: :notify, ready_timeout: 20_000)
              {:messages, messages} = Process.info(self(), :messages)
              send(test, {:result, self(), result, messages})
              receive do: (:done -> :ok)
            end)

          assert_receive {:result, ^caller, result, messages}, 15_000
          assert result == {:error, :watchdog_timeout}
          assert messages == []
          assert Process.alive?(caller)
          send(caller, :done)
        end)

      assert log =~ "watchdog timeout"
      assert_none_left(m)
    end

    test "WATCHDOG=trigger while starting: {:error, :watchdog_timeout}" do
      m = marker()
      {py, args} = python(~s[notify("WATCHDOG=trigger")\ntime.sleep(1000)\n], m)

      capture_log(fn ->
        task = Task.async(fn -> Daemon.start_link(py, args, ready: :notify) end)
        assert Task.await(task, 15_000) == {:error, :watchdog_timeout}
      end)

      assert_none_left(m)
    end
  end

  describe "EXTEND_TIMEOUT_USEC (with ready: :notify)" do
    test "moves the ready deadline out" do
      m = marker()

      script = """
      notify("EXTEND_TIMEOUT_USEC=3000000")
      time.sleep(1.2)
      notify("READY=1")
      time.sleep(1000)
      """

      {py, args} = python(script, m)
      t0 = System.monotonic_time(:millisecond)
      assert {:ok, pid} = Daemon.start_link(py, args, ready: :notify, ready_timeout: 500)
      assert ms_since(t0) >= 1_100
      assert Daemon.status(pid).state == :ready
      stop_and_check(pid, m)
    end

    test "a shorter one than what is left does not bring the deadline in" do
      m = marker()

      script = """
      notify("EXTEND_TIMEOUT_USEC=100000")
      time.sleep(0.6)
      notify("READY=1")
      time.sleep(1000)
      """

      {py, args} = python(script, m)
      assert {:ok, pid} = Daemon.start_link(py, args, ready: :notify, ready_timeout: 2_000)
      assert Daemon.status(pid).state == :ready
      stop_and_check(pid, m)
    end
  end

  test "the command's environment: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID = its pid" do
    m = marker()
    # The shell says what it got and becomes the pinger (same pid), which
    # keeps the daemon up while the test looks.
    {py, args} = python(@pinger, m)
    script = ~s(echo "$NOTIFY_SOCKET $WATCHDOG_USEC $WATCHDOG_PID $$"; exec "$0" "$@")

    # As if the BEAM ran under systemd with a watchdog of its own: replaced.
    inherited = [
      {"NOTIFY_SOCKET", "/run/systemd/notify"},
      {"WATCHDOG_USEC", "1"},
      {"WATCHDOG_PID", "1"}
    ]

    {:ok, pid} =
      Daemon.start_link("sh", ["-c", script, py | args],
        watchdog: 300,
        env: inherited,
        logger_fun: forward()
      )

    assert_receive {:stdout, line}
    assert ["@muontrap-notify-" <> _, "300000", watchdog_pid, own] = String.split(line)
    assert watchdog_pid == own
    # STARTED may come after the first output: wait for it.
    assert String.to_integer(own) == command_pid(pid)

    assert_receive {:stdout, "ping 1"}
    stop_and_check(pid, m)
  end

  test "ready: :notify alone: NOTIFY_SOCKET, and an inherited watchdog's variables removed" do
    m = marker()
    # As if the BEAM ran under systemd with a watchdog of its own.
    inherited = [{"WATCHDOG_USEC", "5000000"}, {"WATCHDOG_PID", "1"}]

    script =
      ~s(echo "[$NOTIFY_SOCKET] [${WATCHDOG_USEC-unset}] [${WATCHDOG_PID-unset}]"; ) <>
        "systemd-notify --ready; exec #{helper()} sleep #{m}"

    {:ok, pid} =
      Daemon.start_link("sh", ["-c", script],
        ready: :notify,
        env: inherited,
        logger_fun: forward()
      )

    assert_receive {:stdout, "[@muontrap-notify-" <> rest}
    assert rest =~ ~r/^[0-9a-f-]+\] \[unset\] \[unset\]$/
    stop_and_check(pid, m)
  end
end
