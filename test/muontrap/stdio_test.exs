defmodule MuonTrap.StdioTest do
  # A command's stdio and channel (MuonTrap.Stdio): the supervisor says
  # hello, its frames come on the channel and the output through the
  # pipe; a start that cannot happen is one clear error. (No Erlang port
  # per command: spawner_test.exs, not async, as Port.list/0 is global.)
  use ExUnit.Case, async: true

  alias MuonTrap.{Options, PortBinary, Stdio}

  defp start(args, stdio) do
    options = Options.validate(:cmd, "echo", args, [])
    PortBinary.start(stdio, options, :output)
  end

  # Steps the stdio until EOF, collecting output.
  defp read_all(stdio, acc \\ "") do
    case Stdio.next(stdio) do
      {:data, data, stdio} ->
        read_all(stdio, acc <> data)

      {:wait, stdio} ->
        %Stdio{resource: res} = stdio
        ref = stdio.refs.output

        receive do
          {:select, ^res, ^ref, :ready_input} -> read_all(stdio, acc)
        after
          5_000 -> flunk("no output")
        end

      {:eof, _stdio} ->
        acc
    end
  end

  test "the supervisor says hello, then STARTED and EXIT; the output comes through the pipe" do
    stdio = start(["through the pipe"], Stdio.open(65_536))
    assert read_all(stdio) == "through the pipe\n"
    # The supervisor waits for the channel to close after EXIT.
    assert [{:supervisor, sup}, {:started, cmd}, {:exit, 0} | rest] = take_until_exit(stdio)
    assert rest == []
    assert is_integer(sup) and is_integer(cmd) and sup != cmd

    assert %{supervisor: ^sup, program: ^cmd, exited: true} =
             MuonTrap.Nif.stdio_info(stdio.resource)

    Stdio.close(stdio)
  end

  test "a start on a closed stdio is one clear error, and nothing is spawned" do
    stdio = Stdio.open(65_536)
    Stdio.close(stdio)

    assert_raise MuonTrap.Error, "muontrap: cannot start the command: its stdio is closed", fn ->
      start(["never runs"], stdio)
    end
  end

  test "closing the channel makes the supervisor stop the command" do
    stdio = start([], Stdio.open(65_536))
    Stdio.close(stdio)
    # The channel's end is seen by the supervisor: nothing of it stays.
    %{supervisor: sup} = MuonTrap.Nif.stdio_info(stdio.resource)
    if sup, do: wait_for(fn -> not File.exists?("/proc/#{sup}") end)
  end

  describe "between the request and the hand-over" do
    # The supervisor is asked for before the command is built
    # (PortBinary.start/3): its HELLO may come before the HANDOVER.
    test "an owner that dies leaves no supervisor" do
      test = self()

      owner =
        spawn(fn ->
          stdio = Stdio.request!(Stdio.open(65_536), PortBinary.path())
          [{:supervisor, sup} | _] = take_until(stdio, &match?({:supervisor, _}, &1))
          send(test, {:sup, sup})
          receive do: (:go -> :ok)
        end)

      assert_receive {:sup, sup}, 5_000
      assert File.exists?("/proc/#{sup}")
      send(owner, :go)
      # Its channel shut down before any HANDOVER: it exits quietly.
      wait_for(fn -> not File.exists?("/proc/#{sup}") end)
    end

    test "other commands start while one waits for its hand-over" do
      # Its supervisor (the spawner's standby, most likely) waits for the
      # HANDOVER; the spawner serves the next requests meanwhile.
      stdio = Stdio.request!(Stdio.open(65_536), PortBinary.path())
      [{:supervisor, _} | _] = take_until(stdio, &match?({:supervisor, _}, &1))
      task = Task.async(fn -> for i <- 1..3, do: MuonTrap.cmd("echo", ["#{i}"]) end)
      assert Task.await(task, 10_000) == [{"1\n", 0}, {"2\n", 0}, {"3\n", 0}]
      Stdio.close(stdio)
    end

    test "a supervisor gone before the HANDOVER ran nothing: the start asks for another" do
      stdio = Stdio.request!(Stdio.open(65_536), PortBinary.path())
      [{:supervisor, sup} | _] = take_until(stdio, &match?({:supervisor, _}, &1))
      # As when the request dies in a SIGKILLed spawner's socket: the
      # HANDOVER finds the channel's other end closed (EPIPE).
      System.cmd("kill", ["-KILL", "#{sup}"])
      MuonTrap.Test.OSProcess.wait_all_dead([sup])
      command = PortBinary.command(Options.validate(:cmd, "echo", ["again"], []), :output)
      stdio = Stdio.hand_over!(stdio, command, PortBinary.path())
      frames = take_until_exit(stdio)
      assert {:supervisor, another} = List.keyfind(frames, :supervisor, 0)
      assert another != sup
      assert {:exit, 0} in frames
      assert read_all(stdio) == "again\n"
      Stdio.close(stdio)
    end

    test "no frame can go out before the HANDOVER, which would be read as one" do
      stdio = Stdio.request!(Stdio.open(65_536), PortBinary.path())
      assert_raise ArgumentError, fn -> MuonTrap.Nif.stdio_send(stdio.resource, "x") end
      Stdio.close(stdio)
    end
  end

  defp take_until(stdio, done?) do
    Enum.reduce_while(1..100, [], fn _, acc ->
      case Stdio.recv(stdio) do
        {frames, state} when state in [:eof, :exited] ->
          {:halt, acc ++ frames}

        {frames, :wait} ->
          acc = acc ++ frames

          if Enum.any?(acc, done?) do
            {:halt, acc}
          else
            %Stdio{resource: res, ref: ref} = stdio
            assert_receive {:select, ^res, ^ref, :ready_input}, 5_000
            {:cont, acc}
          end
      end
    end)
  end

  defp take_until_exit(stdio), do: take_until(stdio, &match?({:exit, _}, &1))

  defp wait_for(fun, tries \\ 500) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("condition not met")
      true -> Process.sleep(10) && wait_for(fun, tries - 1)
    end
  end
end
