defmodule Mix.Tasks.Muontrap.Bench do
  @shortdoc "Benchmarks MuonTrap against System.cmd/3"
  @moduledoc """
  Runs MuonTrap and `System.cmd/3` (the bare BEAM port) side by side in one
  BEAM and prints min/median/max figures and ratios.

      mix muontrap.bench [--quick] [--gb] [--only SECTION] [--write | --output DIR]

    * `--quick` - fewer repetitions, 200 daemons instead of 1,000, no 100 MB
      window sweep, 10 MB instead of 100 MB of `:input` (about 30 s)
    * `--gb` - add the 1 GB throughput cases
    * `--only latency|throughput|input|concurrency|timeout|daemon|cgroup|many|memory|first_use|binary` -
      one section
      (`cgroup` is the cgroup v2 cases of sections 4 and 5; without cgroup v2
      controllers, section 5 on a v1 memory group beneath the BEAM's own);
      nothing is written
    * `--write` - replace the committed `bench/results.md` and
      `bench/throughput.svg` (a full run only: not with `--quick`)
    * `--output DIR` - write `results.md` and `throughput.svg` to `DIR`

  Without `--write` or `--output`, the two files go to `_build/bench/`,
  which git ignores, so a run leaves the working tree as it was.

  Every output byte is counted; the run ends by checking `/proc` that no
  supervisor, port binary or command it started is left: nothing but
  MuonTrap's resident spawner, which stays while the BEAM runs.

  A task of this repository, not of the library: it lives in `bench/lib/`,
  compiled only in this project's own `:dev` and `:test` environments
  (`elixirc_paths` in `mix.exs`), never when MuonTrap is a dependency. The
  sections, measurement helpers (`Measure`, `Procs`) and the output
  (`Report`) are modules under `bench/lib/muontrap.bench/`.
  """
  use Mix.Task

  alias Mix.Tasks.Muontrap.Bench.{
    CgroupSections,
    FirstUse,
    Footprint,
    InputSection,
    Measure,
    Procs,
    Report,
    ResidentFloor,
    Sections
  }

  @sections ~w(latency throughput input concurrency timeout daemon cgroup many memory first_use binary)

  @impl Mix.Task
  def run(argv) do
    {opts, _} =
      OptionParser.parse!(argv,
        strict: [quick: :boolean, gb: :boolean, only: :string, write: :boolean, output: :string]
      )

    out = output_dir(opts)

    Mix.Task.run("compile")
    Logger.configure(level: :warning)
    {:ok, _} = Application.ensure_all_started(:muontrap)

    floor = Measure.build_floor()

    cfg = %{
      quick: opts[:quick] || false,
      gb: opts[:gb] || false,
      reps: if(opts[:quick], do: 3, else: 7),
      floor: floor,
      resident: floor && ResidentFloor.start(floor),
      load_start: Procs.load_average()
    }

    only = opts[:only]

    if only != nil and only not in @sections,
      do:
        Mix.raise(
          "unknown section #{inspect(only)}, expected one of #{Enum.join(@sections, ", ")}"
        )

    IO.puts(
      "MuonTrap benchmark: #{System.schedulers_online()} schedulers, OTP #{System.otp_release()}, " <>
        "Elixir #{System.version()}, load #{cfg.load_start}" <>
        if(cfg.quick, do: " (--quick)\n", else: "\n")
    )

    rows = Enum.flat_map(@sections, &if(only in [nil, &1], do: run_section(&1, cfg), else: []))
    if cfg.resident, do: ResidentFloor.stop(cfg.resident)

    leftovers = Procs.leftovers()
    IO.puts("left behind: #{if leftovers == [], do: "nothing", else: inspect(leftovers)}")

    if out, do: write(out, rows, cfg, leftovers)
    if leftovers != [], do: Mix.raise("processes left behind: #{inspect(leftovers)}")
  end

  # Where results.md and throughput.svg go: nowhere for one section; the
  # committed files in bench/ only when asked, from a full run, since a
  # partial one would drop rows and plotted series.
  defp output_dir(opts) do
    cond do
      opts[:write] && opts[:output] ->
        Mix.raise("--write writes bench/; --output names another directory: pass one of them")

      opts[:only] && (opts[:write] || opts[:output]) ->
        Mix.raise("--only runs one section and writes nothing: drop --write/--output")

      opts[:write] && opts[:quick] ->
        Mix.raise("--write replaces the committed results: run it without --quick")

      opts[:only] ->
        nil

      opts[:write] ->
        "bench"

      true ->
        opts[:output] || Path.join("_build", "bench")
    end
  end

  defp run_section(s, cfg) do
    IO.puts("## #{s}")
    rows = section(s, cfg)
    Enum.each(rows, &Report.print_row/1)
    IO.puts("")
    rows
  end

  defp section(s, cfg) when s in ~w(daemon cgroup), do: CgroupSections.section(s, cfg)
  defp section("input", cfg), do: InputSection.section("input", cfg)
  defp section("memory", cfg), do: Footprint.section("memory", cfg)
  defp section("first_use", cfg), do: FirstUse.section("first_use", cfg)
  defp section(s, cfg), do: Sections.section(s, cfg)

  defp write(out, rows, cfg, leftovers) do
    File.mkdir_p!(out)
    File.write!(Path.join(out, "results.md"), Report.markdown(rows, cfg, leftovers))
    File.write!(Path.join(out, "throughput.svg"), Report.svg(rows))
    IO.puts("wrote #{out}/results.md and #{out}/throughput.svg")
  end
end
