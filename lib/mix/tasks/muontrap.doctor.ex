defmodule Mix.Tasks.Muontrap.Doctor do
  @shortdoc "Explains this host's cgroup setup for MuonTrap, and how to fix it"
  @moduledoc """
  Explains the host to a MuonTrap user: the cgroup layout (pure v2, hybrid
  or v1) and its mount points, where the BEAM sits in each hierarchy, the
  controllers available and enabled, whether the base group is writable,
  whether `cgroup.kill` and pidfds exist, and for every problem the
  command that fixes it.

      mix muontrap.doctor [--base muontrap] [--beneath-own-cgroup]

    * `--base` - the `:cgroup_base` to check (default `muontrap`)
    * `--beneath-own-cgroup` - check it as `beneath_own_cgroup: true` would
      place it: beneath the BEAM's own cgroup in every hierarchy

  Exits with status 1 when a problem was found.
  """
  use Mix.Task

  alias MuonTrap.Cgroup

  @controllers ~w(cpu memory pids)

  @impl Mix.Task
  def run(argv) do
    {opts, _} = OptionParser.parse!(argv, strict: [base: :string, beneath_own_cgroup: :boolean])

    Mix.Task.run("compile")

    beneath = Keyword.get(opts, :beneath_own_cgroup, false)
    report = report(Keyword.get(opts, :base, "muontrap"), beneath)
    Enum.each(report.lines, &Mix.shell().info/1)

    case report.problems do
      [] ->
        Mix.shell().info("\nNo problems found.")

      problems ->
        Mix.shell().info("\n#{length(problems)} problem(s):")

        for {problem, fix} <- problems do
          Mix.shell().info("  * #{problem}\n    fix: #{fix}")
        end

        exit({:shutdown, 1})
    end
  end

  @doc """
  The report for `base` as a map of printable `:lines` and
  `{problem, fixing_command}` `:problems`.
  """
  @spec report(String.t(), boolean()) :: %{
          lines: [String.t()],
          problems: [{String.t(), String.t()}]
        }
  def report(base, beneath_own_cgroup) do
    layout = Cgroup.layout()
    {lines, problems} = {["cgroup layout: #{layout.kind} (#{describe(layout.kind)})"], []}

    {lines, problems} =
      case layout.v2 do
        nil -> {lines, problems}
        v2 -> v2_lines(v2, lines, problems)
      end

    lines =
      lines ++
        for h <- layout.v1 do
          "cgroup v1 #{Enum.join(h.controllers, ",")} at #{h.mount}; the BEAM is in #{own(h)}"
        end ++
        for h <- List.wrap(layout.v2) ++ layout.v1,
            h.own not in [nil, ""],
            not beneath_own_cgroup do
          "note: the BEAM is not at the root of #{h.mount}: pass beneath_own_cgroup: true " <>
            "to keep commands beneath its own group (check with --beneath-own-cgroup)"
        end

    {lines, problems} = base_checks(layout, base, beneath_own_cgroup, lines, problems)
    pidfd = pidfd?()

    lines =
      lines ++
        [
          "pidfds (pidfd_open, Linux 5.3+): #{if pidfd, do: "yes", else: "no"}" <>
            if(pidfd, do: "", else: " (signals are checked against /proc before sending)")
        ]

    lines = lines ++ attribute_lines()

    problems =
      if layout.kind == :none,
        do:
          problems ++
            [{"no cgroup filesystem is mounted", "sudo mount -t cgroup2 none /sys/fs/cgroup"}],
        else: problems

    %{lines: lines, problems: problems}
  end

  defp describe(:v2), do: "cgroup2 only"
  defp describe(:hybrid), do: "v1 controller hierarchies plus a cgroup2 mount"
  defp describe(:v1), do: "cgroup v1 only"
  defp describe(:none), do: "no cgroups; processes are still contained by their supervisor"

  defp own(%{own: nil}), do: "a group outside this mount"
  defp own(%{own: ""}), do: "the root"
  defp own(%{own: own}), do: "/" <> own

  defp read_words(path) do
    case File.read(path) do
      {:ok, text} -> String.split(text)
      _ -> []
    end
  end

  defp v2_lines(v2, lines, problems) do
    available = read_words(Path.join(v2.mount, "cgroup.controllers"))
    enabled = read_words(Path.join(v2.mount, "cgroup.subtree_control"))

    kill? =
      File.exists?(Path.join(v2.mount, "cgroup.kill")) or kill_in_children?(v2.mount) or
        kernel_at_least?({5, 14})

    lines =
      lines ++
        [
          "cgroup2 at #{v2.mount}; the BEAM is in #{own(v2)}",
          "  controllers available: #{Enum.join(available, " ")}",
          "  enabled for children (#{v2.mount}/cgroup.subtree_control): #{Enum.join(enabled, " ")}",
          "  cgroup.kill (Linux 5.14+): #{if kill?, do: "yes", else: "no (processes are killed one by one)"}"
        ]

    {lines, problems}
  end

  # The root group has no cgroup.kill; any child shows whether the kernel has it.
  defp kill_in_children?(mount) do
    mount |> Path.join("*/cgroup.kill") |> Path.wildcard() |> Enum.any?()
  end

  defp base_checks(layout, base, beneath_own_cgroup, lines, problems) do
    v1 = Cgroup.v1_controllers()

    # The hierarchies a group with cpu, memory and pids limits spans.
    hierarchies =
      [tracking(layout)] ++
        Enum.map(@controllers, fn c ->
          Enum.find(layout.v1, &(c in &1.controllers)) || layout.v2
        end)

    hierarchies = hierarchies |> Enum.reject(&is_nil/1) |> Enum.uniq()

    Enum.reduce(hierarchies, {lines, problems}, fn h, {lines, problems} ->
      check_base(h, base, beneath_own_cgroup, v1, layout, lines, problems)
    end)
  end

  defp tracking(layout) do
    layout.v2 || Enum.find(layout.v1, &("freezer" in &1.controllers)) ||
      Enum.find(layout.v1, &("pids" in &1.controllers))
  end

  defp check_base(%{own: nil} = h, _base, true, _v1, _layout, lines, problems) do
    {lines,
     problems ++
       [
         {"the BEAM's own group in #{h.mount} is outside the mount",
          "use --base without --beneath-own-cgroup"}
       ]}
  end

  defp check_base(h, base, beneath_own_cgroup, v1, layout, lines, problems) do
    parent = if beneath_own_cgroup, do: Path.join(h.mount, h.own), else: h.mount
    dir = Path.join(parent, base)
    who = System.get_env("USER") || "$(whoami)"

    {state, problems} =
      cond do
        writable?(dir) ->
          {"writable", problems}

        File.dir?(dir) ->
          {"not writable",
           problems ++ [{"#{dir} is not writable", "sudo chown -R #{who} #{dir}"}]}

        writable?(parent) ->
          {"absent, will be created", problems}

        true ->
          {"absent, cannot be created",
           problems ++
             [
               {"#{dir} does not exist and #{parent} is not writable",
                "sudo mkdir -p #{dir} && sudo chown -R #{who} #{dir}"}
             ]}
      end

    problems = problems ++ v2_delegation(h, layout, v1, parent, dir)
    {lines ++ ["base #{dir}: #{state}"], problems}
  end

  # On cgroup2 the controllers must be enabled in every level's subtree_control.
  defp v2_delegation(%{mount: mount}, %{v2: %{mount: mount}}, v1, parent, dir) do
    wanted = Enum.reject(@controllers, &(&1 in v1))
    available = read_words(Path.join(mount, "cgroup.controllers"))

    for c <- wanted, reduce: [] do
      acc ->
        cond do
          c not in available ->
            acc ++
              [
                {"controller #{c} is not in #{mount}/cgroup.controllers (bound to v1 or disabled in the kernel)",
                 "boot with systemd.unified_cgroup_hierarchy=1 (or cgroup_no_v1=#{c})"}
              ]

          c not in read_words(Path.join(parent, "cgroup.subtree_control")) ->
            acc ++
              [
                {"controller #{c} is not enabled for #{parent}'s children",
                 "echo +#{c} | sudo tee #{parent}/cgroup.subtree_control" <>
                   if(File.dir?(dir), do: " #{dir}/cgroup.subtree_control", else: "")}
              ]

          true ->
            acc
        end
    end
  end

  defp v2_delegation(_h, _layout, _v1, _parent, _dir), do: []

  # What :nice and :rlimits may ask for from this BEAM: lowering a nice
  # value needs CAP_SYS_NICE (bit 23), raising a hard limit CAP_SYS_RESOURCE (24).
  defp attribute_lines do
    caps = effective_caps()
    nice? = Bitwise.band(caps, Bitwise.bsl(1, 23)) != 0
    resource? = Bitwise.band(caps, Bitwise.bsl(1, 24)) != 0

    [
      "nice: values from the BEAM's own (#{own_nice()}) to 19 always; lower ones " <>
        if(nice?, do: "too (CAP_SYS_NICE)", else: "fail (no CAP_SYS_NICE)"),
      "rlimits: soft limits up to the hard ones always; hard limits can be lowered, " <>
        if(resource?,
          do: "and raised (CAP_SYS_RESOURCE)",
          else: "not raised (no CAP_SYS_RESOURCE)"
        ),
      "rlimits now (soft/hard): " <> current_limits()
    ]
  end

  defp effective_caps do
    with {:ok, status} <- File.read("/proc/self/status"),
         [_, hex] <- Regex.run(~r/^CapEff:\s*([0-9a-f]+)$/m, status) do
      String.to_integer(hex, 16)
    else
      _ -> 0
    end
  end

  defp own_nice do
    with {:ok, stat} <- File.read("/proc/self/stat"),
         [_, rest] <- String.split(stat, ") ", parts: 2) do
      Enum.at(String.split(rest), 16)
    else
      _ -> "?"
    end
  end

  defp current_limits do
    case File.read("/proc/self/limits") do
      {:ok, text} ->
        for line <- tl(String.split(text, "\n", trim: true)),
            [name, soft, hard] <- [
              Regex.run(~r/^Max (.+?)\s{2,}(\S+)\s+(\S+)/, line, capture: :all_but_first)
            ],
            name in ["open files", "core file size", "processes", "locked memory", "stack size"],
            do: "#{name} #{soft}/#{hard}"

      {:error, _} ->
        ["unknown"]
    end
    |> Enum.join(", ")
  end

  defp writable?(path) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :directory, access: :read_write}} -> true
      _ -> false
    end
  end

  defp pidfd?, do: kernel_at_least?({5, 3})

  defp kernel_at_least?(version) do
    case :os.version() do
      {major, minor, _} -> {major, minor} >= version
      _ -> false
    end
  end
end
