defmodule MuonTrap.DaemonTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  defp forward_lines(pid \\ self()), do: fn line -> send(pid, {:line, line}) end

  test "child_spec/1 defaults" do
    assert %{
             id: Daemon,
             start: {Daemon, :start_link, ["echo", ["a"], []]},
             type: :worker,
             restart: :permanent,
             shutdown: 500
           } = Daemon.child_spec(["echo", ["a"]])

    assert %{start: {Daemon, :start_link, ["echo", [], [log_output: :info]]}} =
             Daemon.child_spec(["echo", [], [log_output: :info]])
  end

  test "output goes to logger_fun line by line, partial lines at exit too" do
    {:ok, pid} =
      Daemon.start_link("sh", ["-c", "printf 'one\\ntwo\\nthr'; printf 'ee'"],
        logger_fun: forward_lines()
      )

    ref = Process.monitor(pid)
    assert_receive {:line, "one"}
    assert_receive {:line, "two"}
    assert_receive {:line, "three"}
    assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:normal, :noproc]
  end

  test "logger_fun as {m, f} and {m, f, a}" do
    defmodule Sink do
      def line(line, pid \\ nil), do: send(pid || :daemon_test_sink, {:line, line})
    end

    Process.register(self(), :daemon_test_sink)
    {:ok, _} = Daemon.start_link("echo", ["mf"], logger_fun: {Sink, :line})
    assert_receive {:line, "mf"}
    {:ok, _} = Daemon.start_link("echo", ["mfa"], logger_fun: {Sink, :line, [self()]})
    assert_receive {:line, "mfa"}
  end

  test "log_output logs with the prefix and metadata" do
    log =
      capture_log([metadata: [:muontrap_cmd, :muontrap_args, :mine]], fn ->
        {:ok, pid} =
          Daemon.start_link("echo", ["hello log"],
            log_output: :error,
            logger_metadata: [mine: 42, muontrap_cmd: "overridden?"]
          )

        ref = Process.monitor(pid)

        assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:normal, :noproc],
                       5_000
      end)

    assert log =~ "echo: hello log"
    assert log =~ "mine=42"
    assert log =~ "muontrap_cmd=echo"
    # Joined by spaces, so a formatted line shows them (MuonTrap 2.0 does too).
    assert log =~ "muontrap_args=hello log"
    assert log =~ "Process exited successfully"
  end

  test "logger metadata always carries the command and its arguments" do
    {:ok, pid} =
      Daemon.start_link(helper(), ["sleep"],
        log_output: :debug,
        logger_metadata: [muontrap_args: :mine, extra: 1]
      )

    {:dictionary, dict} = Process.info(pid, :dictionary)
    metadata = dict[:"$logger_metadata$"]
    assert metadata[:muontrap_cmd] == helper()
    assert metadata[:muontrap_args] == "sleep"
    assert metadata[:extra] == 1
    GenServer.stop(pid)
  end

  test "log_prefix and log_transform" do
    log =
      capture_log(fn ->
        {:ok, pid} =
          Daemon.start_link("echo", ["abc"],
            log_output: :error,
            log_prefix: "[x] ",
            log_transform: &String.upcase/1
          )

        ref = Process.monitor(pid)

        assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:normal, :noproc],
                       5_000
      end)

    assert log =~ "[x] ABC"
  end

  test "invalid UTF-8 never reaches the logger: the default :log_transform replaces it" do
    prefix = "utf8-#{System.unique_integer([:positive])}: "
    id = String.to_atom(prefix)

    :ok =
      :logger.add_handler(id, MuonTrap.Test.RawLog, %{config: %{test: self(), prefix: prefix}})

    on_exit(fn -> :logger.remove_handler(id) end)

    capture_log(fn ->
      {:ok, pid} =
        Daemon.start_link("printf", ["ok\\n\\377\\376bad\\n"],
          log_output: :error,
          log_prefix: prefix
        )

      ref = Process.monitor(pid)

      assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:normal, :noproc],
                     5_000
    end)

    assert_receive {:raw_log, ok}
    assert ok == prefix <> "ok"
    assert_receive {:raw_log, bad}
    assert String.valid?(bad)

    # Elixir 1.16+ puts U+FFFD in place of the invalid bytes; older
    # versions log what MuonTrap 2.0 logs.
    if function_exported?(String, :replace_invalid, 1),
      do: assert(bad == prefix <> apply(String, :replace_invalid, [<<0xFF, 0xFE, "bad">>])),
      else: assert(bad == prefix <> "** MuonTrap filtered 5 non-UTF8 bytes **")
  end

  test "stderr_to_stdout and capture_stderr_only" do
    {:ok, _} =
      Daemon.start_link(helper(), ["out_err", "O\n", "E\n"],
        logger_fun: forward_lines(),
        stderr_to_stdout: true
      )

    assert_receive {:line, "O"}
    assert_receive {:line, "E"}

    {:ok, _} =
      Daemon.start_link(helper(), ["out_err", "O2\n", "E2\n"],
        logger_fun: forward_lines(),
        capture_stderr_only: true
      )

    assert_receive {:line, "E2"}
    refute_received {:line, "O2"}
  end

  test "non-zero exit stops with :error_exit_status or the mapped reason" do
    Process.flag(:trap_exit, true)

    log =
      capture_log(fn ->
        {:ok, pid} = Daemon.start_link("sh", ["-c", "exit 3"], [])
        assert_receive {:EXIT, ^pid, :error_exit_status}, 5_000
      end)

    assert log =~ "exited with status 3"

    capture_log(fn ->
      {:ok, pid} =
        Daemon.start_link("sh", ["-c", "exit 4"], exit_status_to_reason: &{:status, &1})

      assert_receive {:EXIT, ^pid, {:status, 4}}, 5_000
    end)
  end

  test "os_pid/1 and command_os_pid/1 return the real OS pids" do
    {:ok, pid} = Daemon.start_link(helper(), ["sleep"], [])
    port_pid = wait_until(fn -> is_integer(Daemon.os_pid(pid)) && Daemon.os_pid(pid) end)

    child = command_pid(pid)

    assert File.read!("/proc/#{port_pid}/cmdline") =~ "muontrap"
    assert File.read!("/proc/#{child}/cmdline") =~ "muontrap_test_helper"

    assert File.read!("/proc/#{child}/stat")
           |> String.split(") ")
           |> Enum.at(1)
           |> String.split()
           |> Enum.at(1) ==
             "#{port_pid}"

    GenServer.stop(pid)
    refute alive?(child)
    wait_all_dead([port_pid])
  end

  test "once its command runs, the daemon hibernates: the start's heap is let go" do
    {:ok, pid} = Daemon.start_link("sleep", ["1000"], [])

    # No call: a call would wake it. Well before the idle hibernation.
    wait_until(
      fn ->
        Process.info(pid, :current_function) == {:current_function, {:erlang, :hibernate, 3}}
      end,
      5_000,
      "the daemon to hibernate"
    )

    # Its state only (a few hundred words); the start's garbage (the
    # BEAM's environment, the command value) took thousands.
    {:total_heap_size, words} = Process.info(pid, :total_heap_size)
    assert words < 1_000
    assert is_integer(Daemon.command_os_pid(pid))
    GenServer.stop(pid)
  end

  test "stopping a chatty daemon mid-stream kills it and its children" do
    m = marker()

    {:ok, pid} =
      Daemon.start_link(
        "sh",
        ["-c", "#{helper()} fork_many 3 #{m} & exec #{helper()} chatty 0 0 #{m}"],
        logger_fun: forward_lines()
      )

    assert_receive {:line, "line 1000"}, 5_000
    wait_until(fn -> length(pids_matching(m)) == 5 end)
    pids = pids_matching(m)
    GenServer.stop(pid)
    assert Enum.filter(pids, &alive?/1) == []
  end

  test "a daemon ignoring SIGTERM is killed after delay_to_sigkill" do
    {:ok, pid} =
      Daemon.start_link(helper(), ["ignore_sigterm", "2"],
        logger_fun: forward_lines(),
        delay_to_sigkill: 100
      )

    assert_receive {:line, "ready"}, 5_000
    child = Daemon.command_os_pid(pid)
    GenServer.stop(pid)
    refute alive?(child)
  end

  test "the port binary dying abnormally stops the daemon with the port's reason" do
    Process.flag(:trap_exit, true)
    {:ok, pid} = Daemon.start_link(helper(), ["sleep"], [])

    child = command_pid(pid)

    System.cmd("kill", ["-KILL", "#{Daemon.os_pid(pid)}"])
    assert_receive {:EXIT, ^pid, :muontrap_supervisor_died}, 5_000
    # The command got SIGKILL from its parent-death signal.
    wait_all_dead([child])
  end

  test "statistics/1 counts output and has an empty cgroup map without a cgroup" do
    {:ok, pid} =
      Daemon.start_link("sh", ["-c", "#{helper()} print_bytes 5000; exec #{helper()} sleep"],
        logger_fun: fn _ -> :ok end
      )

    wait_until(fn -> Daemon.statistics(pid).output_byte_count == 5000 end)
    assert Daemon.statistics(pid) == %{output_byte_count: 5000, cgroup: %{}}
    GenServer.stop(pid)
  end

  @tag :linux
  test "cgroup functions without a cgroup" do
    {:ok, pid} = Daemon.start_link(helper(), ["sleep"], [])
    assert Daemon.cgroup_path(pid) == nil
    assert Daemon.cgget(pid, "memory.current") == {:error, :no_cgroup}
    assert Daemon.cgset(pid, "memory.max", "1") == {:error, :no_cgroup}
    assert Daemon.cgroup_config(pid) == %{}
    assert Daemon.statistics(pid) == %{output_byte_count: 0, cgroup: %{}}
    GenServer.stop(pid)
  end

  describe "wait_for" do
    test "runs before the launch" do
      test = self()

      {:ok, pid} =
        Daemon.start_link("echo", ["launched"],
          logger_fun: forward_lines(),
          wait_for: fn ->
            send(test, {:waiting, self()})

            receive do
              :go -> :ok
            end
          end
        )

      assert_receive {:waiting, waiter}
      assert Daemon.os_pid(pid) == :error
      refute_received {:line, _}
      send(waiter, :go)
      assert_receive {:line, "launched"}, 5_000
    end

    test "raising crashes the daemon without launching" do
      Process.flag(:trap_exit, true)

      capture_log(fn ->
        {:ok, pid} =
          Daemon.start_link("echo", ["never"],
            logger_fun: forward_lines(),
            wait_for: fn -> raise "nope" end
          )

        # The exception's own exit reason, as a linked Task's crash gives.
        assert_receive {:EXIT, ^pid, {%RuntimeError{message: "nope"}, [_ | _]}}, 5_000
      end)

      refute_received {:line, _}
    end

    test "stopping the daemon ends the wait" do
      test = self()

      {:ok, pid} =
        Daemon.start_link("echo", ["never"],
          wait_for: fn ->
            send(test, {:waiting, self()})
            Process.sleep(:infinity)
          end
        )

      assert_receive {:waiting, waiter}
      ref = Process.monitor(waiter)
      GenServer.stop(pid)
      assert_receive {:DOWN, ^ref, :process, ^waiter, _}
    end
  end

  describe "under a supervisor" do
    test ":permanent restarts, :transient only after a failure, :temporary never" do
      test = self()
      counter = :counters.new(3, [])

      spec = fn id, restart, script, index ->
        Supervisor.child_spec(
          {Daemon,
           [
             "sh",
             ["-c", script],
             [
               logger_fun: fn _ -> :ok end,
               wait_for: fn ->
                 :counters.add(counter, index, 1)
                 send(test, {:started, id})
               end
             ]
           ]},
          id: id,
          restart: restart
        )
      end

      capture_log(fn ->
        {:ok, sup} =
          Supervisor.start_link(
            [
              spec.(:perm, :permanent, "exit 0", 1),
              spec.(:trans_ok, :transient, "exit 0", 2),
              spec.(:temp, :temporary, "exit 1", 3)
            ],
            strategy: :one_for_one,
            max_restarts: 1_000,
            max_seconds: 5
          )

        wait_until(fn -> :counters.get(counter, 1) >= 3 end)
        assert :counters.get(counter, 2) == 1
        assert :counters.get(counter, 3) == 1
        Supervisor.stop(sup)
      end)
    end

    test ":transient restarts after a non-zero exit" do
      counter = :counters.new(1, [])

      capture_log(fn ->
        {:ok, sup} =
          Supervisor.start_link(
            [
              Supervisor.child_spec(
                {Daemon,
                 ["sh", ["-c", "exit 2"], [wait_for: fn -> :counters.add(counter, 1, 1) end]]},
                restart: :transient
              )
            ],
            strategy: :one_for_one,
            max_restarts: 100,
            max_seconds: 1
          )

        wait_until(fn -> :counters.get(counter, 1) >= 3 end)
        Supervisor.stop(sup)
      end)
    end

    test "several daemons with distinct ids; stopping the supervisor kills everything" do
      m = marker()

      children =
        for i <- 1..3 do
          Supervisor.child_spec({Daemon, ["sh", ["-c", "exec #{helper()} fork_many 2 #{m}"]]},
            id: {:d, i}
          )
        end

      {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one)
      assert length(Supervisor.which_children(sup)) == 3
      wait_until(fn -> length(pids_matching(m)) == 9 end)
      pids = pids_matching(m)
      Supervisor.stop(sup)
      assert Enum.filter(pids, &alive?/1) == []
    end
  end
end
