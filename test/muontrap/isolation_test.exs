defmodule MuonTrap.IsolationTest do
  # Many concurrent cmd/3 calls while other callers are killed at random
  # moments: no command's bytes may land in another's result (or in the
  # BEAM's own descriptors), no call may fail or hang, and nothing may be
  # left: no descriptor in the BEAM, no OS process, no cgroup. Every
  # command writes text of its own, so a single foreign byte is seen.
  # Not async: it compares the BEAM's descriptors before and after.
  use ExUnit.Case, async: false

  import MuonTrap.Test.OSProcess

  alias MuonTrap.Cgroup
  alias MuonTrap.Test.Storm

  defp beam_fds, do: length(Path.wildcard("/proc/#{System.pid()}/fd/*"))

  defp storm(pairs, opts, mode \\ :output) do
    # The spawner's request socket is the BEAM's for good: open before the baseline.
    {"", 0} = MuonTrap.cmd("true", [])
    fds = beam_fds()
    {m, failures} = Storm.run(pairs, opts, mode)

    assert failures == [], "#{length(failures)} of #{pairs}: #{inspect(Enum.take(failures, 5))}"
    wait_until(fn -> pids_matching(m) == [] end, 10_000, "every command of the storm to be gone")
    wait_until(fn -> beam_fds() <= fds end, 5_000, fn -> "BEAM fds #{beam_fds()} > #{fds}" end)
  end

  @tag timeout: 300_000
  test "1,000 commands beside 1,000 callers killed at random: no cross-talk, errors or hangs" do
    storm(1_000, [])
  end

  @tag timeout: 300_000
  test "500 commands fed :input beside 500 killed callers fed another's: each gets its own back" do
    storm(500, [], :input)
  end

  @tag timeout: 300_000
  test "300 streams with stdout and stderr apart beside 300 killed ones: each byte on its stream" do
    storm(300, [], :stream)
  end

  @tag :soak
  @tag timeout: :infinity
  test "10,000 commands beside 10,000 callers killed at random" do
    storm(10_000, [])
  end

  @tag :cgroup_limits
  @tag timeout: 300_000
  test "callers killed at random leave no cgroup behind" do
    base = "muontrap_test_#{marker()}"
    layout = Cgroup.layout()

    dirs =
      for h <- List.wrap(layout.v2) ++ layout.v1,
          h.own != nil,
          do: Path.join([h.mount, h.own, base])

    on_exit(fn -> for dir <- dirs, File.dir?(dir), do: File.rmdir(dir) end)

    storm(100,
      cgroup_base: base,
      beneath_own_cgroup: true,
      cgroup: %{pids_max: 100}
    )

    wait_until(
      fn ->
        Enum.all?(
          dirs,
          &(Path.wildcard(Path.join(&1, "*/")) |> Enum.filter(fn d -> File.dir?(d) end) == [])
        )
      end,
      10_000,
      "every group beneath #{base} to be removed"
    )
  end
end
