defmodule MuonTrap.DaemonReadyTest do
  # Readiness (`:ready`, `:ready_timeout`) with real programs: redis-server
  # and systemd-notify speak sd_notify, a Python sender walks through the
  # states, and output lines make a command ready. start_link/3 returns
  # only once the command is ready, fails with the reason otherwise, and
  # its caller lives on either way; nothing is left behind.
  # EXTEND_TIMEOUT_USEC= is tested in daemon_watchdog_test.exs, which is
  # not async: its deadline runs from start_link.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.{Notify, OSProcess}

  alias MuonTrap.Daemon

  doctest MuonTrap.Daemon.Readiness

  defp forward(pid), do: {:tagged, fn stream, line -> send(pid, {stream, line}) end}

  defp os_pids(daemon), do: [Daemon.os_pid(daemon), command_pid(daemon)]

  # Nothing with the marker is left: command, descendants, port binary.
  defp assert_none_left(m),
    do: wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "every process of #{m} to go")

  defp stop_and_check(daemon, m) do
    pids = os_pids(daemon)
    GenServer.stop(daemon)
    wait_all_dead(pids)
    assert_none_left(m)
  end

  defp ms_since(t0), do: System.monotonic_time(:millisecond) - t0

  # Runs `fun` in a spawned process of its own, linked to nothing but
  # what `fun` links and trapping exits only if `trap?`. It sends
  # back the result, the time taken and its mailbox, then stays alive
  # until done/1, so the test can see it survived and so that a daemon it
  # started (linked to it, its parent) lives on.
  defp in_caller(fun, trap? \\ false) do
    test = self()

    spawn(fn ->
      Process.flag(:trap_exit, trap?)
      t0 = System.monotonic_time(:millisecond)
      result = fun.()
      elapsed = ms_since(t0)
      {:messages, messages} = Process.info(self(), :messages)
      send(test, {:result, self(), result, elapsed, messages})
      receive do: (:done -> :ok)
    end)
  end

  defp await_caller(caller, timeout \\ 20_000) do
    assert_receive {:result, ^caller, result, elapsed, messages}, timeout
    assert Process.alive?(caller), "the caller died with the start"
    # No {:EXIT, ...} from the failed daemon, no {:ack, ...} or reply.
    assert messages == [], "stray messages in the caller: #{inspect(messages)}"
    {result, elapsed}
  end

  defp done(caller), do: send(caller, :done)

  @tag :linux
  test "redis-server --supervised systemd: ready means listening, PING answers at once" do
    # A short path: a Unix socket's path is at most 107 bytes.
    sock = Path.join(System.tmp_dir!(), "muontrap_redis_#{marker()}.sock")
    on_exit(fn -> File.rm(sock) end)

    {:ok, pid} =
      Daemon.start_link(
        "redis-server",
        ~w(--supervised systemd --port 0 --unixsocket #{sock} --save) ++
          ["", "--appendonly", "no"],
        ready: :notify
      )

    # No retry: ready means the socket is listening.
    {:ok, conn} = :gen_tcp.connect({:local, sock}, 0, [:binary, active: false])
    :ok = :gen_tcp.send(conn, "PING\r\n")
    assert {:ok, "+PONG\r\n"} = :gen_tcp.recv(conn, 0, 5_000)
    :gen_tcp.close(conn)

    assert %{state: :ready} = Daemon.status(pid)
    pids = os_pids(pid)
    GenServer.stop(pid)
    wait_all_dead(pids)
  end

  @tag :linux
  test "systemd-notify --ready --status after 0.3 s: start_link waits for it" do
    m = marker()

    script =
      ~s(sleep 0.3; systemd-notify --ready --status="warming done"; exec #{helper()} sleep #{m})

    t0 = System.monotonic_time(:millisecond)
    {:ok, pid} = Daemon.start_link("sh", ["-c", script], ready: :notify)
    elapsed = ms_since(t0)
    assert elapsed >= 280, "returned after #{elapsed} ms, before READY=1"
    assert elapsed < 10_000
    assert Daemon.status(pid) == %{state: :ready, status_text: "warming done", main_pid: nil}
    stop_and_check(pid, m)
  end

  @tag :linux
  test "a Python sender: STATUS, READY, RELOADING, READY, STOPPING, MAINPID" do
    m = marker()
    # Each line on stdin is sent as one datagram; the sender stays alive.
    script = """
    notify("STATUS=loading")
    notify("READY=1")
    for line in iter(sys.stdin.readline, ""):
        notify(line.strip().replace("$PID", str(os.getpid())))
    time.sleep(1000)
    """

    {py, args} = python(script, m)
    {:ok, pid} = Daemon.start_link(py, args, ready: :notify, stdin: :pipe)
    assert Daemon.status(pid) == %{state: :ready, status_text: "loading", main_pid: nil}

    step = fn line, expected ->
      assert Daemon.write(pid, line <> "\n") == :ok

      wait_until(
        fn -> match?(^expected, Map.take(Daemon.status(pid), Map.keys(expected))) end,
        10_000,
        fn -> "#{inspect(expected)} after #{line}, got #{inspect(Daemon.status(pid))}" end
      )
    end

    step.("RELOADING=1", %{state: :reloading})
    step.("STATUS=reloading config", %{state: :reloading, status_text: "reloading config"})
    step.("READY=1", %{state: :ready})
    py_pid = command_pid(pid)
    step.("MAINPID=$PID", %{main_pid: py_pid})
    step.("STOPPING=1", %{state: :stopping})
    # READY=1 no longer counts once stopping.
    step.("READY=1\nSTATUS=late", %{status_text: "late"})
    assert Daemon.status(pid) == %{state: :stopping, status_text: "late", main_pid: py_pid}
    stop_and_check(pid, m)
  end

  describe "ready_timeout" do
    @tag :linux
    test "from a caller that does not trap exits: the tree is gone, the caller lives" do
      m = marker()
      # The shell records its pid, then becomes the sleeper.
      pidfile = Path.join(System.tmp_dir!(), "muontrap_pid_#{m}")
      on_exit(fn -> File.rm(pidfile) end)
      script = ~s(echo $$ > #{pidfile}; exec #{helper()} sleep #{m})

      log =
        capture_log(fn ->
          caller =
            in_caller(fn ->
              result = Daemon.start_link("sh", ["-c", script], ready: :notify, ready_timeout: 300)

              # Looked at as soon as start_link returns.
              {result, pids_matching(m)}
            end)

          {{result, left}, elapsed} = await_caller(caller)
          done(caller)
          assert result == {:error, :ready_timeout}
          assert elapsed >= 280
          assert elapsed < 10_000
          # It ran, and its tree was terminated (and reaped) before
          # start_link returned.
          sleeper = pidfile |> File.read!() |> String.trim() |> String.to_integer()
          assert left == []
          refute alive?(sleeper)
        end)

      assert log =~ "not ready within 300 ms"
      assert_none_left(m)
    end

    @tag :linux
    test "from a caller that traps exits: no {:EXIT, ...} or other stray message left" do
      # Not the test process itself: capture_log's StringIO, linked to
      # it, leaves an {:EXIT, io, :normal} of its own when trapping.
      m = marker()

      log =
        capture_log(fn ->
          caller =
            in_caller(
              fn ->
                Daemon.start_link(helper(), ["sleep", m], ready: :notify, ready_timeout: 300)
              end,
              true
            )

          {result, elapsed} = await_caller(caller)
          done(caller)
          assert result == {:error, :ready_timeout}
          assert elapsed >= 280 and elapsed < 10_000
          assert_none_left(m)
        end)

      assert log =~ "not ready within 300 ms"
    end

    # The timeout sends SIGTERM; a command that reports readiness while
    # it goes (at SIGTERM, or a report still on its way) must not turn
    # the failed start into a success, nor make its exit the reason.
    @tag :linux
    test "READY=1 after the timeout fired: still {:error, :ready_timeout}, the caller lives" do
      m = marker()

      script = """
      import signal
      def term(*_):
          notify("READY=1")
          time.sleep(0.2)
          sys.exit(1)
      signal.signal(signal.SIGTERM, term)
      say("armed")
      while True:
          time.sleep(1)
      """

      {py, args} = python(script, m)
      test = self()

      log =
        capture_log(fn ->
          caller =
            in_caller(fn ->
              Daemon.start_link(py, args,
                ready: :notify,
                ready_timeout: 2_000,
                logger_fun: forward(test)
              )
            end)

          assert_receive {:stdout, "armed"}
          {result, _elapsed} = await_caller(caller)
          done(caller)
          assert result == {:error, :ready_timeout}
        end)

      assert log =~ "not ready within 2000 ms"
      assert_none_left(m)
    end

    test "a matching line after the timeout fired: still {:error, :ready_timeout}" do
      m = marker()
      # The shell runs its trap once the foreground sleep is gone too.
      script =
        ~s(exec 2>/dev/null; trap 'echo now listening; exit 1' TERM; echo armed; while :; do sleep 0.05; done; : #{m})

      test = self()

      capture_log(fn ->
        caller =
          in_caller(fn ->
            Daemon.start_link("sh", ["-c", script],
              ready: {:output, "listening"},
              ready_timeout: 1_000,
              logger_fun: forward(test)
            )
          end)

        assert_receive {:stdout, "armed"}
        {result, _elapsed} = await_caller(caller)
        done(caller)
        assert result == {:error, :ready_timeout}
      end)

      assert_none_left(m)
    end

    @tag :linux
    test "while wait_for still runs: {:error, :ready_timeout}, the caller lives" do
      test = self()

      capture_log(fn ->
        caller =
          in_caller(fn ->
            Daemon.start_link(helper(), ["sleep"],
              ready: :notify,
              ready_timeout: 300,
              wait_for: fn ->
                send(test, {:waiting, self()})
                Process.sleep(:infinity)
              end
            )
          end)

        assert_receive {:waiting, waiter}
        assert {{:error, :ready_timeout}, elapsed} = await_caller(caller)
        done(caller)
        assert elapsed >= 280
        # The wait_for task is gone with the daemon.
        refute Process.alive?(waiter)
      end)
    end

    @tag :linux
    test ":infinity is accepted" do
      m = marker()
      script = "systemd-notify --ready; exec #{helper()} sleep #{m}"

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", script], ready: :notify, ready_timeout: :infinity)

      assert Daemon.status(pid).state == :ready
      stop_and_check(pid, m)
    end
  end

  describe "the command exits before it is ready" do
    for status <- [3, 0] do
      @tag :linux
      test "exit #{status}: {:error, {:exit_status, #{status}}}, the caller lives" do
        m = marker()
        script = "exit #{unquote(status)}; : #{m}"

        caller = in_caller(fn -> Daemon.start_link("sh", ["-c", script], ready: :notify) end)
        {result, _elapsed} = await_caller(caller)
        done(caller)
        assert result == {:error, {:exit_status, unquote(status)}}
        assert_none_left(m)
      end
    end

    @tag :linux
    test "a command that cannot be exec'd: {:error, {:muontrap_error, message}}" do
      # Executable, with an interpreter that does not exist: execve fails.
      script = Path.join(System.tmp_dir!(), "muontrap_bad_interp_#{marker()}")
      File.write!(script, "#!/nonexistent/interpreter\n")
      File.chmod!(script, 0o755)
      on_exit(fn -> File.rm(script) end)

      capture_log(fn ->
        caller = in_caller(fn -> Daemon.start_link(script, [], ready: :notify) end)
        assert {{:error, {:muontrap_error, message}}, _} = await_caller(caller)
        done(caller)
        assert message =~ "failed to run"
      end)
    end

    @tag :linux
    test "from a trapping caller: the error, and no {:EXIT, ...} left" do
      start = fn -> Daemon.start_link("sh", ["-c", "exit 3"], ready: :notify) end
      caller = in_caller(start, true)
      assert {{:error, {:exit_status, 3}}, _} = await_caller(caller)
      done(caller)
    end
  end

  describe "ready: {:output, pattern}" do
    # The command prints, waits for the gate file, then prints the line
    # the pattern matches: the earlier output must not make it ready.
    defp gate_path(m) do
      gate = Path.join(System.tmp_dir!(), "muontrap_gate_#{m}")
      on_exit(fn -> File.rm(gate) end)
      gate
    end

    defp gated_script(gate, ready_line, m),
      do:
        "echo booting; echo 'still booting on 4000'; " <>
          "while [ ! -e #{gate} ]; do sleep 0.01; done; " <>
          "echo '#{ready_line}'; echo after; exec #{helper()} sleep #{m}"

    test "a string: only the matching line makes it ready" do
      m = marker()
      gate = gate_path(m)
      script = gated_script(gate, "server listening on 4000", m)
      test = self()

      caller =
        in_caller(fn ->
          Daemon.start_link("sh", ["-c", script],
            ready: {:output, "listening on"},
            logger_fun: forward(test)
          )
        end)

      assert_receive {:stdout, "booting"}
      assert_receive {:stdout, "still booting on 4000"}
      # The lines were handled and the start still waits.
      refute_received {:result, ^caller, _, _, _}
      File.write!(gate, "")
      assert {{:ok, pid}, _} = await_caller(caller)
      assert_received {:stdout, "server listening on 4000"}
      assert Daemon.status(pid).state == :ready
      stop_and_check(pid, m)
      done(caller)
    end

    test "a Regex, with log_output: the lines are still logged" do
      m = marker()
      gate = gate_path(m)
      script = gated_script(gate, "listening on port 4000", m)
      name = :"regex_test_#{m}"

      log =
        capture_log(fn ->
          caller =
            in_caller(fn ->
              Daemon.start_link("sh", ["-c", script],
                ready: {:output, ~r/port \d+$/},
                log_output: :info,
                name: name
              )
            end)

          pid = wait_until(fn -> Process.whereis(name) end)
          # Both early lines are in (byte count), no match yet.
          wait_until(fn -> Daemon.statistics(pid).output_byte_count >= 30 end)
          assert Daemon.status(pid).state == :starting
          refute_received {:result, ^caller, _, _, _}
          File.write!(gate, "")
          assert {{:ok, ^pid}, _} = await_caller(caller)
          wait_until(fn -> Daemon.statistics(pid).output_byte_count >= 59 end)
          stop_and_check(pid, m)
          done(caller)
        end)

      for line <- ["booting", "still booting on 4000", "listening on port 4000", "after"],
          do: assert(log =~ "sh: #{line}")
    end

    test "stdout is captured for the pattern without a log option" do
      m = marker()
      script = "echo warming; echo READY now; exec #{helper()} sleep #{m}"
      {:ok, pid} = Daemon.start_link("sh", ["-c", script], ready: {:output, "READY"})
      assert Daemon.status(pid).state == :ready
      stop_and_check(pid, m)
    end

    test "a pattern never printed: {:error, :ready_timeout}" do
      m = marker()
      script = "echo one; echo two; exec #{helper()} sleep #{m}"

      log =
        capture_log(fn ->
          caller =
            in_caller(fn ->
              Daemon.start_link("sh", ["-c", script],
                ready: {:output, ~r/never/},
                ready_timeout: 300
              )
            end)

          {result, elapsed} = await_caller(caller)
          done(caller)
          assert result == {:error, :ready_timeout}
          assert elapsed >= 280
          assert_none_left(m)
        end)

      assert log =~ "not ready within 300 ms"
    end
  end

  @tag :linux
  test "READY=1 from outside the containment (the BEAM itself) is ignored" do
    m = marker()

    log =
      capture_log(fn ->
        starter =
          Task.async(fn ->
            # Long enough, on a loaded machine, to find the command and
            # send to it before the timeout ends it.
            Daemon.start_link(helper(), ["sleep", m], ready: :notify, ready_timeout: 5_000)
          end)

        [cmd] = wait_until(fn -> match?([_], pids = pids_matching(m)) && pids end)
        {:ok, environ} = File.read("/proc/#{cmd}/environ")
        "@" <> name = notify_socket(environ)
        assert String.starts_with?(name, "muontrap-notify-")
        {:ok, s} = :socket.open(:local, :dgram)
        # Delivered to the port's socket, which must ignore it.
        assert :socket.sendto(s, "READY=1", %{family: :local, path: <<0, name::binary>>}) == :ok
        :socket.close(s)
        assert Task.await(starter, 15_000) == {:error, :ready_timeout}
        refute alive?(cmd)
      end)

    assert log =~ "not ready within 5000 ms"
    assert_none_left(m)
  end

  defp notify_socket(environ) do
    Enum.find_value(String.split(environ, <<0>>), fn
      "NOTIFY_SOCKET=" <> value -> value
      _ -> nil
    end)
  end

  @tag :linux
  test "under a Supervisor the next child starts only once the daemon is ready" do
    m = marker()
    name = :"ready_test_#{m}"
    test = self()
    script = "sleep 0.5; systemd-notify --ready; exec #{helper()} sleep #{m}"

    children = [
      Supervisor.child_spec({Daemon, ["sh", ["-c", script], [ready: :notify, name: name]]},
        id: :a
      ),
      %{
        id: :b,
        start: {Agent, :start_link, [fn -> send(test, {:recorded, Daemon.status(name)}) end]}
      }
    ]

    {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one)
    assert_received {:recorded, %{state: :ready}}
    pids = os_pids(name)
    Supervisor.stop(sup)
    wait_all_dead(pids)
    assert_none_left(m)
  end

  test "bad :ready, :ready_timeout and :watchdog values raise ArgumentError" do
    for opts <- [
          [ready: :yes],
          [ready: {:output, ""}],
          [ready: {:output, 42}],
          [ready: :notify, ready_timeout: 0],
          [ready: :notify, ready_timeout: -1],
          [ready: :notify, ready_timeout: "1"],
          [watchdog: 0],
          [watchdog: :x],
          [watchdog: :infinity]
        ] do
      assert_raise ArgumentError, fn -> Daemon.start_link("true", [], opts) end
    end
  end

  describe "with wait_for" do
    @tag :linux
    test "wait_for, then the command becomes ready: {:ok, pid}" do
      m = marker()
      script = "systemd-notify --ready; exec #{helper()} sleep #{m}"
      t0 = System.monotonic_time(:millisecond)

      {:ok, pid} =
        Daemon.start_link("sh", ["-c", script],
          ready: :notify,
          wait_for: fn -> Process.sleep(100) end
        )

      assert ms_since(t0) >= 100
      assert Daemon.status(pid).state == :ready
      stop_and_check(pid, m)
    end

    @tag :linux
    test "a wait_for that raises: {:error, {exception, stacktrace}}, the caller lives" do
      m = marker()

      capture_log(fn ->
        caller =
          in_caller(fn ->
            Daemon.start_link(helper(), ["sleep", m],
              ready: :notify,
              wait_for: fn -> raise "no database" end
            )
          end)

        {result, _elapsed} = await_caller(caller)
        done(caller)
        assert {:error, {%RuntimeError{message: "no database"}, stack}} = result
        assert is_list(stack)
      end)

      assert_none_left(m)
    end
  end
end
