defmodule MuonTrap.OutputPipeTest do
  # cmd/3's command writes into a pipe the BEAM reads (MuonTrap.Stdio):
  # check that it really does, that the pipe bounds what is in flight, and that
  # it is closed however cmd/3 ends. Not async: it looks at the BEAM's own fds.
  use ExUnit.Case, async: false

  import MuonTrap.Test.OSProcess

  # Prints the pipe its stdout is, then `rest`; the pipe shows as "pipe:[inode]".
  defp sh_with_pipe_name(rest), do: ["-c", "readlink /proc/$$/fd/1; #{rest}"]

  defp first_line(acc \\ "") do
    receive do
      {:collected, data} ->
        case String.split(acc <> data, "\n", parts: 2) do
          [line, _rest] -> line
          [partial] -> first_line(partial)
        end
    after
      5_000 -> flunk("no output")
    end
  end

  # A caller running cmd/3 in another process, and the command's stdout pipe.
  defp caller_running(rest) do
    parent = self()

    caller =
      spawn(fn -> MuonTrap.cmd("sh", sh_with_pipe_name(rest), into: %Collect{to: parent}) end)

    {caller, first_line()}
  end

  test "the command writes into a pipe the BEAM reads, not through the port binary" do
    {caller, pipe} = caller_running("exec sleep 30")
    assert "pipe:[" <> _ = pipe
    # The BEAM holds the read end (its write end went to the port binary).
    assert beam_fds_on(pipe) != []
    Process.exit(caller, :kill)
    wait_until(fn -> beam_fds_on(pipe) == [] end, 5_000, "the pipe closed in the BEAM")
  end

  test "a caller killed while the command streams leaves no pipe open in the BEAM" do
    {caller, pipe} = caller_running("exec yes")
    Process.exit(caller, :kill)
    wait_until(fn -> beam_fds_on(pipe) == [] end, 5_000, "the pipe closed in the BEAM")
  end

  test "the pipe is closed when cmd/3 returns, times out or raises" do
    {out, 0} = MuonTrap.cmd("sh", sh_with_pipe_name("echo done"))
    [pipe, "done"] = String.split(out, "\n", trim: true)
    assert beam_fds_on(pipe) == []

    {out, :timeout} = MuonTrap.cmd("sh", sh_with_pipe_name("exec yes"), timeout: 200)
    [pipe | _] = String.split(out, "\n", parts: 2)
    assert beam_fds_on(pipe) == []

    raising = %Collect{to: :no_such_registered_process}

    assert_raise ArgumentError, fn ->
      MuonTrap.cmd("sh", sh_with_pipe_name("exec yes"), into: raising)
    end

    # No select notification or port message is left in the mailbox.
    refute_received _
  end

  test "a command that outruns its caller is paused by the pipe, and nothing piles up" do
    parent = self()
    window = 65_536
    # A size no other process has on its command line, to find head by.
    size = 20_000_000 + :rand.uniform(1_000_000)

    # The collector takes one chunk, then waits for permission to go on.
    gate = fn
      acc, {:cont, data} ->
        send(parent, {:chunk, self(), byte_size(data)})

        receive do
          :go -> acc + byte_size(data)
        end

      acc, :done ->
        acc

      _acc, :halt ->
        :ok
    end

    collectable = %MuonTrap.Test.FunCollectable{fun: gate, acc: 0}

    caller =
      spawn(fn ->
        result =
          MuonTrap.cmd("head", ["-c", "#{size}", "/dev/zero"],
            into: collectable,
            stdio_window: window
          )

        send(parent, {:result, result})
      end)

    assert_receive {:chunk, ^caller, first}, 5_000
    assert first <= window

    [head] =
      wait_until(fn -> match?([_], pids_matching("#{size}")) && pids_matching("#{size}") end)

    # head blocks in write(2) once the pipe is full: what it wrote is bounded
    # by the chunk we hold plus the pipe's capacity (plus head's own buffer).
    wait_until(fn -> blocked_in_write?(head) end, 5_000, "head blocked writing")
    assert written(head) <= first + window + 8192
    # What the guarantee is: no output is ever queued in the mailbox; a
    # select notice may legitimately be in flight.
    {:messages, messages} = Process.info(caller, :messages)
    assert no_output_queued?(messages), inspect(messages)

    # Let it finish; every byte arrives.
    total = release(caller)
    assert total == {size, 0}
  end

  defp release(caller) do
    send(caller, :go)

    receive do
      {:chunk, ^caller, _} -> release(caller)
      {:result, result} -> result
    after
      5_000 -> flunk("stalled")
    end
  end
end
