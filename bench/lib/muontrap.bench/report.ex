defmodule Mix.Tasks.Muontrap.Bench.Report do
  @moduledoc false
  # Rows and their output: the terminal lines, bench/results.md and
  # bench/throughput.svg.
  #
  # A row: %{section, name, unit, stats: {min, med, max}, base: {min, med, max} | nil,
  #          higher_better: bool, extra: string, mem: map, size: ..., window: ...}

  alias Mix.Tasks.Muontrap.Bench.Measure

  @mb 1_000_000

  def row(section, name, unit, stats, base, higher_better, extra \\ []) do
    Map.merge(
      %{
        section: section,
        name: name,
        unit: unit,
        stats: stats,
        base: base,
        higher_better: higher_better
      },
      Map.new(extra)
    )
  end

  defp ratio(%{base: nil}), do: nil

  # Ratios are MuonTrap against System.cmd/3 on medians (or against the
  # base the row's name gives): for rates mt/sys (≥ 1 is as fast), for
  # times mt/sys (≤ 1 is as fast).
  defp ratio(%{stats: {_, m, _}, base: {_, b, _}}), do: m / b

  defp fmt(x) when is_float(x) and x >= 100, do: :erlang.float_to_binary(x, decimals: 0)
  defp fmt(x) when is_float(x) and x >= 10, do: :erlang.float_to_binary(x, decimals: 1)
  defp fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 2)
  defp fmt(x) when is_integer(x), do: fmt(x * 1.0)
  defp fmt(nil), do: ""

  defp fmt_stats({a, b, c}), do: "#{fmt(a)} / #{fmt(b)} / #{fmt(c)}"

  defp mem_note(%{mem: %{mailbox: q, heap: h} = m}) do
    port = if m.port_rss_kb > 0, do: ", port RSS ≤ #{m.port_rss_kb} KB", else: ""
    "caller mailbox ≤ #{q} msgs, heap ≤ #{fmt(h / 1024)} KB#{port}"
  end

  defp mem_note(%{extra: e}), do: e
  defp mem_note(_), do: ""

  def print_row(r) do
    ratio = if x = ratio(r), do: "  ×#{fmt(x)}", else: ""

    IO.puts(
      String.pad_trailing(r.name, 52) <>
        String.pad_leading("#{fmt_stats(r.stats)} #{r.unit}", 32) <> ratio <> "  " <> mem_note(r)
    )
  end

  def markdown(rows, cfg, leftovers) do
    header = """
    # MuonTrap benchmark results

    `mix muontrap.bench#{if cfg.quick, do: " --quick", else: ""}#{if cfg.gb, do: " --gb", else: ""}` on
    #{System.schedulers_online()} schedulers, OTP #{System.otp_release()}, Elixir #{System.version()}.
    Figures are min / median / max; the ratio is MuonTrap's median over System.cmd/3's
    (rates: higher is better; times: lower is better), or over the base a case names
    ("ratio vs cmd/3"). Left behind after the run:
    #{if leftovers == [], do: "nothing", else: inspect(leftovers)}.

    | section | case | min / median / max | unit | ratio vs System.cmd/3 | memory / notes |
    | --- | --- | --- | --- | --- | --- |
    """

    header <>
      Enum.map_join(rows, "", fn r ->
        ratio = if x = ratio(r), do: "×#{fmt(x)}", else: ""

        "| #{r.section} | #{r.name} | #{fmt_stats(r.stats)} | #{r.unit} | #{ratio} | #{mem_note(r)} |\n"
      end)
  end

  # -- bench/throughput.svg ------------------------------------------------

  @geometry %{w: 640, h: 400, l: 60, b: 50}
  @colors ["#1f77b4", "#d62728", "#2ca02c"]

  # Throughput against window size, one line per output size, with System.cmd/3 dashed.
  def svg(rows) do
    %{w: w, h: h, l: l, b: b} = @geometry

    series =
      rows
      |> Enum.filter(&(&1.section == "throughput" and is_integer(Map.get(&1, :window))))
      |> Enum.group_by(& &1.size)

    bases =
      for r <- rows, r.section == "throughput", r.base == nil, into: %{}, do: {r.size, r.stats}

    all =
      Enum.flat_map(Map.values(series), fn rs -> Enum.map(rs, &elem(&1.stats, 1)) end) ++
        Enum.map(Map.values(bases), &elem(&1, 1))

    scale = scale(Enum.max([1.0 | all]) * 1.1)

    """
    <svg xmlns="http://www.w3.org/2000/svg" width="#{w}" height="#{h}" font-family="sans-serif">
    <rect width="100%" height="100%" fill="white"/>
    <text x="#{w / 2}" y="16" text-anchor="middle" font-size="14">Output throughput (MB/s, median) against --stdio-window</text>
    #{yticks(scale)}
    #{xticks(scale)}
    <line x1="#{l}" y1="#{h - b}" x2="#{w - 20}" y2="#{h - b}" stroke="black"/>
    <line x1="#{l}" y1="20" x2="#{l}" y2="#{h - b}" stroke="black"/>
    <text x="#{w / 2}" y="#{h - 12}" text-anchor="middle" font-size="12">window (log scale); the library default is 256 KiB</text>
    #{lines(series, bases, scale)}
    </svg>
    """
  end

  # The x (window, log scale) and y (MB/s) mappings.
  defp scale(ymax) do
    %{w: w, h: h, l: l, b: b} = @geometry
    xs = Enum.map(Measure.windows(), &:math.log2/1)
    {x0, x1} = {Enum.min(xs), Enum.max(xs)}

    %{
      ymax: ymax,
      px: fn win -> l + (:math.log2(win) - x0) / (x1 - x0) * (w - l - 20) end,
      py: fn v -> h - b - v / ymax * (h - b - 20) end
    }
  end

  defp lines(series, bases, scale) do
    series
    |> Enum.sort()
    |> Enum.zip(@colors)
    |> Enum.map_join("\n", fn {{size, rs}, color} -> line(size, rs, bases[size], color, scale) end)
  end

  defp line(size, rs, base, color, %{px: px, py: py}) do
    %{w: w, l: l} = @geometry
    rs = Enum.sort_by(rs, & &1.window)
    pts = Enum.map_join(rs, " ", fn r -> "#{px.(r.window)},#{py.(elem(r.stats, 1))}" end)

    base =
      case base do
        {_, m, _} ->
          ~s[<line x1="#{l}" x2="#{w - 20}" y1="#{py.(m)}" y2="#{py.(m)}" stroke="#{color}" stroke-dasharray="6 4"/>]

        nil ->
          ""
      end

    label = "#{div(size, @mb)} MB"

    ~s[<polyline fill="none" stroke="#{color}" stroke-width="2" points="#{pts}"/>\n#{base}\n] <>
      ~s[<text x="#{w - 20}" y="#{py.(elem(List.last(rs).stats, 1)) - 6}" text-anchor="end" fill="#{color}" font-size="12">MuonTrap.cmd #{label} (dashed: System.cmd)</text>]
  end

  defp xticks(%{px: px}) do
    %{h: h, b: b} = @geometry

    Enum.map_join(Measure.windows(), "\n", fn win ->
      ~s[<text x="#{px.(win)}" y="#{h - b + 18}" text-anchor="middle" font-size="11">#{if win >= 1024, do: "#{div(win, 1024)} KiB", else: win}</text>]
    end)
  end

  defp yticks(%{ymax: ymax, py: py}) do
    %{w: w, l: l} = @geometry

    Enum.map_join(0..4, "\n", fn i ->
      v = ymax / 1.1 * i / 4

      ~s[<text x="#{l - 6}" y="#{py.(v) + 4}" text-anchor="end" font-size="11">#{round(v)}</text>] <>
        ~s[<line x1="#{l}" x2="#{w - 20}" y1="#{py.(v)}" y2="#{py.(v)}" stroke="#ddd"/>]
    end)
  end
end
