defmodule MuonTrap.SpawnerStormTest do
  # The isolation storm (MuonTrap.Test.Storm) with the resident spawner
  # SIGKILLed twice during the run, at a third and two thirds of it. The
  # commands already running go on: every caller still gets its own bytes
  # and nothing else, none hangs, nothing is left (no process in the
  # spawners' sessions, no descriptor in the BEAM). A start whose request
  # was in the killed spawner's socket gets one MuonTrap.Error (its
  # supervisor never existed): allowed, counted, and a small minority.
  # Not async: it kills this BEAM's spawner and counts its descriptors.
  use ExUnit.Case, async: false

  import MuonTrap.Test.{OSProcess, Spawner}

  alias MuonTrap.Test.Storm

  defp beam_fds, do: length(Path.wildcard("/proc/#{System.pid()}/fd/*"))

  # Kills the spawner when `done` reaches each of `at`, waiting for a
  # new one to exist before the next kill. Reports the killed pids.
  defp killer(done, at, parent) do
    spawn_link(fn ->
      killed =
        for n <- at do
          wait_until(fn -> :counters.get(done, 1) >= n end, 120_000, "#{n} pairs done")
          # A new spawner starts with the next command after a kill.
          pid = wait_until(fn -> MuonTrap.Nif.spawner_pid() end, 10_000, "a spawner")
          wait_until(fn -> alive?(pid) end, 10_000, "spawner #{pid} to run")
          kill_spawner(pid)
        end

      send(parent, {:killed, killed})
    end)
  end

  defp storm(pairs) do
    first = spawner()
    fds = beam_fds()
    done = :counters.new(1, [:atomics])
    killer(done, [div(pairs, 3), div(2 * pairs, 3)], self())
    {m, failures} = Storm.run(pairs, [], :tracked, fn _ -> :counters.add(done, 1, 1) end)
    assert_receive {:killed, [^first, second] = killed}, 10_000
    assert second != first

    {errors, others} = Enum.split_with(failures, &match?({:raised, _, _, _}, &1))
    assert others == [], "#{length(others)} of #{pairs}: #{inspect(Enum.take(others, 5))}"
    # Only the starts queued in a dying spawner fail, with the
    # supervisor's death, before any output: at most the storm's
    # concurrency (16) per kill. A running command goes on.
    died = port_died()

    assert Enum.all?(errors, &match?({:raised, _, ^died, 0}, &1)),
           inspect(Enum.reject(errors, &match?({:raised, _, ^died, 0}, &1)))

    assert length(errors) <= 32, "#{length(errors)} of #{pairs} raised"
    report("#{pairs} pairs, the spawner killed twice: #{length(errors)} callers got the error")

    # The replacement spawner works, and nothing of the storm is left.
    assert MuonTrap.cmd("echo", [m]) == {"#{m}\n", 0}
    wait_until(fn -> pids_matching(m) == [] end, 10_000, "every command of the storm to be gone")
    assert_sessions_empty(killed ++ [spawner()])
    wait_until(fn -> beam_fds() <= fds end, 5_000, fn -> "BEAM fds #{beam_fds()} > #{fds}" end)
  end

  @tag timeout: 300_000
  test "1,000 pairs, the spawner SIGKILLed twice: own bytes only, no hang, no leak" do
    storm(1_000)
  end

  @tag :soak
  @tag timeout: :infinity
  test "10,000 pairs, the spawner SIGKILLed twice" do
    storm(10_000)
  end
end
