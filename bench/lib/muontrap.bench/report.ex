defmodule Mix.Tasks.Muontrap.Bench.Report do
  @moduledoc false
  # Rows and their output: the terminal lines, results.md and
  # throughput.svg.
  #
  # A row: %{section, name, unit, stats: {min, med, max}, base: {min, med, max} | nil,
  #          higher_better: bool, extra: string, mem: map, size: ..., window: ...}

  alias Mix.Tasks.Muontrap.Bench.{Measure, Procs}

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
    port = if m.port_rss_kb > 0, do: ", port/supervisor RSS ≤ #{m.port_rss_kb} KB", else: ""
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

  @doc "results.md: how the run was made (load included), then a table row per row."
  @spec markdown([map()], map(), [term()]) :: String.t()
  def markdown(rows, cfg, leftovers) do
    header = """
    # MuonTrap benchmark results

    `mix muontrap.bench#{if cfg.quick, do: " --quick", else: ""}#{if cfg.gb, do: " --gb", else: ""}` on
    #{System.schedulers_online()} schedulers, OTP #{System.otp_release()}, Elixir #{System.version()},
    #{Date.utc_today()}; load average #{cfg.load_start} at the start, #{Procs.load_average()} at the end.
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

  # -- throughput.svg ------------------------------------------------------

  # The plot area, with room on the right for the legend so that neither
  # the last x label nor a series label overlaps the lines.
  @geometry %{w: 760, h: 420, left: 70, right: 540, top: 48, bottom: 360, pad: 24}
  @colors ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]

  @doc """
  throughput.svg: what a user compares, MuonTrap.cmd/3's median
  throughput over System.cmd/3's for the same output, per window, one
  line per output size; ×1 is System.cmd/3's speed.
  """
  @spec svg([map()]) :: String.t()
  def svg(rows) do
    %{w: w, h: h, left: l, right: r, top: t, bottom: b} = @geometry

    series =
      rows
      |> Enum.filter(&(&1.section == "throughput" and is_integer(Map.get(&1, :window))))
      |> Enum.group_by(& &1.size, &{&1.window, ratio(&1)})
      |> Enum.sort()
      |> Enum.zip(@colors)

    ratios = for {{_size, points}, _} <- series, {_, ratio} <- points, do: ratio
    scale = scale(y_max([1.0 | ratios]))

    """
    <svg xmlns="http://www.w3.org/2000/svg" width="#{w}" height="#{h}" font-family="sans-serif">
    <rect width="100%" height="100%" fill="white"/>
    <text x="#{(l + r) / 2}" y="20" text-anchor="middle" font-size="14">MuonTrap.cmd/3 throughput over System.cmd/3's (medians), by :stdio_window</text>
    #{yticks(scale)}
    #{xticks(scale)}
    <line x1="#{l}" y1="#{b}" x2="#{r}" y2="#{b}" stroke="black"/>
    <line x1="#{l}" y1="#{t}" x2="#{l}" y2="#{b}" stroke="black"/>
    <text x="#{(l + r) / 2}" y="#{b + 40}" text-anchor="middle" font-size="12">:stdio_window (log scale)</text>
    <text transform="translate(18 #{(t + b) / 2}) rotate(-90)" text-anchor="middle" font-size="12">ratio to System.cmd/3 (higher is faster)</text>
    #{reference_lines(scale)}
    #{Enum.map_join(series, "\n", fn {{_size, points}, color} -> series_line(points, color, scale) end)}
    #{legend(series)}
    </svg>
    """
  end

  # Room above the highest ratio, and never less than ×1.25 so that the ×1
  # line is always inside the plot; a multiple of the tick step.
  defp y_max(ratios) do
    top = max(Enum.max(ratios) * 1.1, 1.25)
    step = y_step(top)
    Float.ceil(top / step) * step
  end

  defp y_step(top) when top <= 2, do: 0.25
  defp y_step(top) when top <= 4, do: 0.5
  defp y_step(_top), do: 1.0

  # The x (window, log scale) and y (ratio) mappings.
  defp scale(ymax) do
    %{left: l, right: r, top: t, bottom: b, pad: pad} = @geometry
    xs = Enum.map(Measure.windows(), &:math.log2/1)
    {x0, x1} = {Enum.min(xs), Enum.max(xs)}

    %{
      ymax: ymax,
      px: fn win ->
        Float.round(l + pad + (:math.log2(win) - x0) / (x1 - x0) * (r - l - 2 * pad), 1)
      end,
      py: fn v -> Float.round(b - v / ymax * (b - t), 1) end
    }
  end

  # ×1 (System.cmd/3's speed) and the library's default window.
  defp reference_lines(%{px: px, py: py}) do
    %{left: l, right: r, top: t, bottom: b} = @geometry
    x = px.(MuonTrap.PortBinary.default_window())

    ~s[<line x1="#{l}" x2="#{r}" y1="#{py.(1.0)}" y2="#{py.(1.0)}" stroke="black" stroke-dasharray="6 4"/>\n] <>
      ~s[<line x1="#{x}" x2="#{x}" y1="#{t}" y2="#{b}" stroke="#999" stroke-dasharray="2 3"/>\n] <>
      ~s[<text x="#{x}" y="#{t - 4}" text-anchor="middle" font-size="11" fill="#666">default</text>]
  end

  defp series_line(points, color, %{px: px, py: py}) do
    points = Enum.sort(points)
    coords = Enum.map(points, fn {win, ratio} -> {px.(win), py.(ratio)} end)
    line = Enum.map_join(coords, " ", fn {x, y} -> "#{x},#{y}" end)

    ~s[<polyline fill="none" stroke="#{color}" stroke-width="2" points="#{line}"/>\n] <>
      Enum.map_join(coords, "\n", fn {x, y} ->
        ~s[<circle cx="#{x}" cy="#{y}" r="3" fill="#{color}"/>]
      end)
  end

  defp legend(series) do
    %{right: r, top: t} = @geometry
    x = r + 20

    entries =
      Enum.map(series, fn {{size, _}, color} -> {color, "", "#{fmt_size(size)} of output"} end) ++
        [{"black", "6 4", "System.cmd/3 (×1)"}]

    entries
    |> Enum.with_index()
    |> Enum.map_join("\n", fn {{color, dash, text}, i} ->
      y = t + 10 + i * 20

      ~s[<line x1="#{x}" x2="#{x + 24}" y1="#{y}" y2="#{y}" stroke="#{color}" stroke-width="2" stroke-dasharray="#{dash}"/>] <>
        ~s[<text x="#{x + 30}" y="#{y + 4}" font-size="12">#{text}</text>]
    end)
  end

  defp fmt_size(size) when size >= 1000 * @mb, do: "#{div(size, 1000 * @mb)} GB"
  defp fmt_size(size), do: "#{div(size, @mb)} MB"

  defp xticks(%{px: px}) do
    %{bottom: b} = @geometry

    Enum.map_join(Measure.windows(), "\n", fn win ->
      ~s[<text x="#{px.(win)}" y="#{b + 18}" text-anchor="middle" font-size="11">#{fmt_window(win)}</text>]
    end)
  end

  defp fmt_window(win) when win >= 1_048_576, do: "#{div(win, 1_048_576)} MiB"
  defp fmt_window(win) when win >= 1024, do: "#{div(win, 1024)} KiB"
  defp fmt_window(win), do: "#{win} B"

  defp yticks(%{ymax: ymax, py: py}) do
    %{left: l, right: r} = @geometry
    step = y_step(ymax)

    Enum.map_join(0..round(ymax / step), "\n", fn i ->
      v = i * step

      ~s[<text x="#{l - 6}" y="#{py.(v) + 4}" text-anchor="end" font-size="11">×#{fmt_ratio(v)}</text>] <>
        ~s[<line x1="#{l}" x2="#{r}" y1="#{py.(v)}" y2="#{py.(v)}" stroke="#ddd"/>]
    end)
  end

  defp fmt_ratio(v) when v == trunc(v), do: Integer.to_string(trunc(v))
  defp fmt_ratio(v), do: :erlang.float_to_binary(v * 1.0, [:compact, decimals: 2])
end
