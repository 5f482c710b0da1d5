defmodule Mix.Tasks.Muontrap.Bench.FirstUse do
  @moduledoc false
  # The section "first_use": the first MuonTrap.cmd/3 and the first Daemon
  # start in a fresh BEAM, in interactive mode (modules load on first use,
  # as under `mix test` and `iex -S mix`), each in a BEAM of its own
  # (`mix run` of this project, the application started as in a test),
  # beside the steady state measured in the same BEAM right after.

  import Mix.Tasks.Muontrap.Bench.Measure, only: [stats: 1]
  import Mix.Tasks.Muontrap.Bench.Report, only: [row: 7]

  @runs 5

  @cmd """
  t0 = System.monotonic_time(:microsecond)
  {_, 0} = MuonTrap.cmd("true", [])
  first = System.monotonic_time(:microsecond) - t0
  steady = for _ <- 1..21, do: elem(:timer.tc(fn -> {_, 0} = MuonTrap.cmd("true", []) end), 0)
  IO.puts("MUONTRAP_FIRST \#{first} \#{Enum.at(Enum.sort(steady), 10)}")
  """

  # Until /proc/<command_os_pid>/exe is sleep, as the daemon rows time it.
  @daemon """
  alias Mix.Tasks.Muontrap.Bench.CgroupSections, as: C
  exe = C.realpath(System.find_executable("sleep"))

  once = fn ->
    t0 = System.monotonic_time(:microsecond)
    {:ok, d} = MuonTrap.Daemon.start_link("sleep", ["1000"], [])
    _ = C.await_exe(d, exe, t0 + 10_000_000)
    us = System.monotonic_time(:microsecond) - t0
    :ok = GenServer.stop(d)
    us
  end

  first = once.()
  steady = for _ <- 1..11, do: once.()
  IO.puts("MUONTRAP_FIRST \#{first} \#{Enum.at(Enum.sort(steady), 5)}")
  """

  def section("first_use", _cfg) do
    [
      rows("first cmd(\"true\") in a fresh BEAM", @cmd),
      rows("first Daemon start in a fresh BEAM (until sleep runs)", @daemon)
    ]
  end

  defp rows(name, script) do
    {first, steady} = Enum.unzip(for _ <- 1..@runs, do: fresh_beam(script))
    {_, median_steady, _} = stats(steady)

    row("first_use", name, "ms", stats(first), nil, false,
      extra:
        "steady state in the same BEAMs: #{fmt(median_steady)} ms (median of the medians); " <>
          "#{@runs} fresh BEAMs"
    )
  end

  defp fresh_beam(script) do
    {out, status} =
      System.cmd("mix", ["run", "--no-compile", "--no-deps-check", "-e", script],
        cd: File.cwd!(),
        env: [{"MIX_ENV", to_string(Mix.env())}],
        stderr_to_stdout: true
      )

    case Regex.run(~r/^MUONTRAP_FIRST (\d+) (\d+)$/m, out) do
      [_, first, steady] when status == 0 ->
        {String.to_integer(first) / 1000, String.to_integer(steady) / 1000}

      _ ->
        Mix.raise("the fresh BEAM failed (exit #{status}):\n#{out}")
    end
  end

  defp fmt(x), do: :erlang.float_to_binary(x * 1.0, decimals: 2)
end
