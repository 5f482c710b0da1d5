defmodule MuonTrap.StreamTest do
  # stream!/3: lazy, back-pressured, each stream in order when apart, and
  # contained however the consumer stops.
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.ExitError

  # Total CPU ticks (utime + stime) of an OS process.
  defp cpu_ticks(pid) do
    {:ok, stat} = File.read("/proc/#{pid}/stat")
    [_, rest] = String.split(stat, ") ", parts: 2)
    fields = String.split(rest)
    String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
  end

  defp pipes(pids),
    do: for(pid <- pids, {:ok, "pipe:" <> _ = l} <- [File.read_link("/proc/#{pid}/fd/1")], do: l)

  test "nothing runs until the stream is enumerated" do
    m = marker()
    stream = MuonTrap.stream!("sh", ["-c", "exec #{helper()} sleep #{m}"], timeout: 100)
    assert pids_matching(m) == []
    assert_raise ExitError, fn -> Enum.to_list(stream) end
  end

  test "everything arrives, each stream in order, with stdout and stderr apart" do
    n = 2_000
    script = "i=0; while [ $i -lt #{n} ]; do echo o$i; echo e$i >&2; i=$((i+1)); done"

    elements = MuonTrap.stream!("sh", ["-c", script], stderr: :separate) |> Enum.to_list()
    out = for {:stdout, data} <- elements, into: "", do: data
    err = for {:stderr, data} <- elements, into: "", do: data
    assert out == Enum.map_join(0..(n - 1), &"o#{&1}\n")
    assert err == Enum.map_join(0..(n - 1), &"e#{&1}\n")
  end

  test "lines, each stream on its own, with the last unterminated line at the end" do
    script = "printf 'a\\nb'; printf 'x\\ny\\nz' >&2"
    elements = MuonTrap.stream!("sh", ["-c", script], stderr: :separate, lines: 16)
    assert Enum.filter(elements, &match?({:stdout, _}, &1)) == [stdout: "a", stdout: "b"]

    assert Enum.filter(elements, &match?({:stderr, _}, &1)) == [
             stderr: "x",
             stderr: "y",
             stderr: "z"
           ]
  end

  test "10 MB arrives byte-exact, and with :input the stream echoes it" do
    assert MuonTrap.stream!(helper(), ["print_bytes", "10000000"]) |> Enum.join() ==
             pattern(10_000_000)

    data = :crypto.strong_rand_bytes(3_000_000)
    assert MuonTrap.stream!("cat", [], input: data) |> Enum.join() == data
  end

  for {name, halt} <- [
        {"Enum.take/2", quote(do: fn s -> Enum.take(s, 3) end)},
        {"Stream.take_while/2",
         quote(do: fn s -> s |> Stream.take_while(fn _ -> false end) |> Enum.to_list() end)},
        {"an exception in the consumer",
         quote(do: fn s -> catch_error(Enum.each(s, fn _ -> raise "consumer failed" end)) end)}
      ] do
    # Scans of /proc are slow while other tests run thousands of processes.
    @tag timeout: 120_000
    test "halting early with #{name} leaves no process or descriptor" do
      m = marker()

      script = "#{helper()} fork_many 3 #{m} > /dev/null & exec #{helper()} repeat #{m} 0"

      stream = MuonTrap.stream!("sh", ["-c", script])
      halt = unquote(halt)
      parent = self()

      consumer =
        spawn_link(fn ->
          # The whole tree (sh's background fork_many and its 3 children,
          # and repeat) is up before the consumer stops.
          stream
          |> Stream.each(fn _ ->
            pids =
              wait_until(
                fn ->
                  pids = pids_matching(m)
                  length(pids) == 5 && pids
                end,
                45_000,
                fn -> "5 processes, found #{inspect(all_pids_matching(m))}" end
              )

            send(parent, {:running, pids, pipes(pids)})
          end)
          |> halt.()

          send(parent, :halted)
          # Alive on: halting alone must stop the command, not the consumer's exit.
          Process.sleep(:infinity)
        end)

      assert_receive {:running, [_, _, _, _, _] = pids, [_ | _] = pipes}, 60_000
      assert_receive :halted, 10_000
      wait_all_dead(pids)
      wait_until(fn -> pids_matching(m) == [] end)
      wait_until(fn -> Enum.all?(pipes, &(beam_fds_on(&1) == [])) end, 5_000, "the pipe to close")
      assert {:links, [_test]} = Process.info(consumer, :links)
      Process.unlink(consumer)
      Process.exit(consumer, :kill)
    end
  end

  test "a consumer that is killed takes the command's whole tree with it" do
    m = marker()
    parent = self()

    consumer =
      spawn(fn ->
        MuonTrap.stream!("sh", [
          "-c",
          # Endless (repeat's count is bytes: a finite one could end before
          # the processes are looked for).
          "#{helper()} fork_many 3 #{m} & exec #{helper()} repeat #{m} 0"
        ])
        # The first element only: endless output would swamp this test.
        |> Enum.reduce(0, fn
          _, 0 -> send(parent, :element) && 1
          _, n -> n + 1
        end)
      end)

    assert_receive :element, 10_000

    wait_until(fn -> length(pids_matching(m)) >= 2 end, 15_000, fn ->
      "the command's processes: #{inspect(all_pids_matching(m))}"
    end)

    pids = pids_matching(m)
    Process.exit(consumer, :kill)
    wait_all_dead(pids)
  end

  test "a consumer that sleeps between elements pauses the command: its CPU time stays flat" do
    stream = MuonTrap.stream!("sh", ["-c", "echo $$; exec yes"], stdio_window: 65_536)
    parent = self()

    consumer =
      spawn_link(fn ->
        Enum.each(stream, fn chunk ->
          send(parent, {:chunk, chunk})
          Process.sleep(:infinity)
        end)
      end)

    assert_receive {:chunk, first}, 10_000
    [pid_text | _] = String.split(first, "\n")
    pid = String.to_integer(pid_text)
    # yes fills the pipe and blocks in write(2), then stays asleep.
    wait_until(fn -> blocked_in_write?(pid) end)
    before = cpu_ticks(pid)
    Process.sleep(500)
    assert cpu_ticks(pid) - before <= 2
    assert blocked_in_write?(pid)
    # Nothing piles up in the mailbox, never output.
    {:messages, messages} = Process.info(consumer, :messages)
    assert no_output_queued?(messages), inspect(messages)

    Process.unlink(consumer)
    Process.exit(consumer, :kill)
    wait_all_dead([pid])
  end

  test "a non-zero exit raises MuonTrap.ExitError after the last output" do
    parent = self()

    error =
      assert_raise ExitError, fn ->
        MuonTrap.stream!("sh", ["-c", "echo last; exit 3"])
        |> Enum.each(&send(parent, {:got, &1}))
      end

    assert_received {:got, "last\n"}
    assert error.status == 3
    assert error.command == "sh"
    assert Exception.message(error) == ~s("sh" exited with status 3)

    error =
      assert_raise ExitError, fn -> Enum.to_list(MuonTrap.stream!("sh", ["-c", "kill -9 $$"])) end

    assert error.status == 137
    assert Exception.message(error) =~ "killed by signal 9"
  end

  test "a timeout raises MuonTrap.ExitError with status: :timeout after what came before it" do
    m = marker()
    parent = self()

    stream =
      MuonTrap.stream!("sh", ["-c", "echo before; exec #{helper()} sleep #{m}"], timeout: 300)

    error = assert_raise ExitError, fn -> Enum.each(stream, &send(parent, {:got, &1})) end
    assert error.status == :timeout
    assert_received {:got, "before\n"}
    wait_until(fn -> pids_matching(m) == [] end)
  end

  test "a command that cannot run raises as cmd/3 does; bad options raise at once" do
    assert_raise ErlangError, ~r/enoent/, fn ->
      Enum.to_list(MuonTrap.stream!("/no/such/cmd", []))
    end

    assert_raise ErlangError, ~r/enoent/, fn -> MuonTrap.stream!("no-such-command-here", []) end

    assert_raise ArgumentError, ~r/invalid option :into for MuonTrap.stream!\/3/, fn ->
      MuonTrap.stream!("echo", [], into: [])
    end

    assert_raise ArgumentError,
                 ~r/stderr: :separate cannot be combined with stderr_to_stdout/,
                 fn ->
                   MuonTrap.stream!("echo", [], stderr: :separate, stderr_to_stdout: true)
                 end

    assert_raise ArgumentError,
                 ~r/invalid option :stderr with value :merged, expected :separate/,
                 fn ->
                   MuonTrap.stream!("echo", [], stderr: :merged)
                 end

    assert_raise ArgumentError, ~r/invalid option :stderr for MuonTrap.cmd\/3/, fn ->
      MuonTrap.cmd("echo", [], stderr: :separate)
    end
  end

  test "a stream can be enumerated twice, running the command each time" do
    stream = MuonTrap.stream!("echo", ["again"])
    assert Enum.to_list(stream) == ["again\n"]
    assert Enum.to_list(stream) == ["again\n"]
  end
end
