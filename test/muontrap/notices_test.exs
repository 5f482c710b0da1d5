defmodule MuonTrap.NoticesTest do
  # End notices (docs/protocol.md, "End notices"): cmd/3 and stream!/3
  # learn of their command's end from one message the dispatcher's port
  # brings, not from a select notice of their pipes; and both ways
  # without one work: no dispatcher (the pipes end with EXIT) and a
  # notice that never comes (the 250 ms fallback).
  # Not async: it kills and suspends the BEAM's one dispatcher.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias MuonTrap.Notices

  @moduletag :linux

  setup do
    Notices.ensure()
    %{dispatcher: dispatcher()}
  end

  # The select and end notices a process running `fun` receives (traced),
  # and its result.
  defp received(fun) do
    me = self()

    {pid, ref} =
      spawn_monitor(fn ->
        receive do: (:go -> :ok)
        send(me, {:result, self(), fun.()})
      end)

    :erlang.trace(pid, true, [:receive])
    send(pid, :go)

    result =
      receive do
        {:result, ^pid, result} -> result
        {:DOWN, ^ref, _, _, reason} -> flunk("the caller died: #{inspect(reason)}")
      end

    {result, collect(pid, [])}
  end

  defp collect(pid, acc) do
    receive do
      {:trace, ^pid, :receive, {:select, _, _, _}} -> collect(pid, [:select | acc])
      {:trace, ^pid, :receive, {:muontrap_ended, _}} -> collect(pid, [:ended | acc])
      {:trace, ^pid, :receive, _other} -> collect(pid, acc)
    after
      200 -> Enum.reverse(acc)
    end
  end

  test "cmd/3 of a command without output wakes once: its end notice", %{dispatcher: d} do
    assert is_pid(d)
    {result, messages} = received(fn -> MuonTrap.cmd("true", []) end)
    assert result == {"", 0}
    assert messages == [:ended]

    # And nothing more is waited for: an empty pipe after EXIT is at its
    # end (not a wait for the drain's 1 s grace).
    {time, {"", 0}} = :timer.tc(fn -> MuonTrap.cmd("true", []) end)
    assert time < 500_000
  end

  test "output comes through the pipe, the end through the notice" do
    {result, messages} = received(fn -> MuonTrap.cmd("sh", ["-c", "echo hi; echo ho"]) end)
    assert result == {"hi\nho\n", 0}
    assert Enum.count(messages, &(&1 == :ended)) == 1

    {result, messages} =
      received(fn ->
        MuonTrap.stream!("sh", ["-c", "head -c 300000 /dev/zero; echo e >&2"], stderr: :separate)
        |> Enum.reduce(%{}, fn {stream, data}, acc ->
          Map.update(acc, stream, byte_size(data), &(&1 + byte_size(data)))
        end)
      end)

    assert result == %{stdout: 300_000, stderr: 2}
    assert Enum.count(messages, &(&1 == :ended)) == 1
  end

  test "a dead dispatcher: commands end through their pipes, and the next start replaces it loudly",
       %{dispatcher: d} do
    ref = Process.monitor(d)
    Process.exit(d, :kill)
    assert_receive {:DOWN, ^ref, _, _, _}

    log =
      capture_log(fn ->
        # This start finds no dispatcher: it starts one, and asks for no
        # notice (the new one is not attached yet, or is).
        assert MuonTrap.cmd("echo", ["hi"]) == {"hi\n", 0}
        new = wait_for_dispatcher(d)
        assert new != d

        # Once attached, notices again.
        wait_until(fn ->
          {{"", 0}, messages} = received(fn -> MuonTrap.cmd("true", []) end)
          messages == [:ended]
        end)
      end)

    assert log =~ "end notices' dispatcher was restarted"
  end

  test "a notice that never comes: the command ends after the 250 ms fallback", %{dispatcher: d} do
    :erlang.suspend_process(d)

    try do
      {time, result} = :timer.tc(fn -> MuonTrap.cmd("echo", ["late"]) end)
      assert result == {"late\n", 0}
      assert time >= 250_000
    after
      :erlang.resume_process(d)
    end

    # Dispatched once the dispatcher runs again: to nobody, as the
    # command is closed (its id forgotten).
    wait_until(fn -> Process.info(d, :message_queue_len) == {:message_queue_len, 0} end)
    refute_receive {:muontrap_ended, _}, 100
    assert MuonTrap.cmd("true", []) == {"", 0}
  end

  defp dispatcher, do: wait_until(fn -> Process.whereis(Notices) end)

  defp wait_for_dispatcher(old) do
    wait_until(fn ->
      case Process.whereis(Notices) do
        nil -> nil
        ^old -> nil
        pid -> pid
      end
    end)
  end

  defp wait_until(fun, tries \\ 500) do
    case fun.() do
      falsy when falsy in [nil, false] and tries > 0 ->
        Process.sleep(10)
        wait_until(fun, tries - 1)

      falsy when falsy in [nil, false] ->
        flunk("condition not met in 5 s")

      value ->
        value
    end
  end
end
