defmodule MuonTrap.Cgroup do
  @moduledoc """
  Translates the `:cgroup` settings map into controllers and interface-file
  writes (cgroup v2, or v1 where the controller is bound to v1), detects
  the host's cgroup layout, and builds cgroup paths.

  Keys mirror the v2 interface files with `.` replaced by `_`, so the map
  returned by `MuonTrap.Daemon.cgroup_config/1` can be passed back in.
  """

  # key => {controller, interface file, value kind}
  @knobs %{
    cpu_weight: {"cpu", "cpu.weight", {:range, 1, 10_000}},
    cpu_max: {"cpu", "cpu.max", :cpu_max},
    cpu_idle: {"cpu", "cpu.idle", :boolean},
    memory_min: {"memory", "memory.min", :bytes},
    memory_low: {"memory", "memory.low", :bytes},
    memory_high: {"memory", "memory.high", :bytes_or_max},
    memory_max: {"memory", "memory.max", :bytes_or_max},
    memory_swap_max: {"memory", "memory.swap.max", :bytes_or_max},
    memory_oom_group: {"memory", "memory.oom.group", :boolean},
    pids_max: {"pids", "pids.max", :bytes_or_max},
    io_weight: {"io", "io.weight", {:range, 1, 10_000}},
    cpuset_cpus: {"cpuset", "cpuset.cpus", :cpu_list},
    cpuset_mems: {"cpuset", "cpuset.mems", :cpu_list}
  }

  @typedoc "The `:cgroup` settings map; see `MuonTrap.Daemon.cgroup_config/1`."
  @type settings :: %{optional(atom()) => term()}

  @doc "The keys accepted in the `:cgroup` settings map."
  @spec keys() :: [atom()]
  def keys, do: Map.keys(@knobs) |> Enum.sort()

  # key => v1 controller, for the keys with a cgroup v1 equivalent.
  @v1_controller %{
    cpu_weight: "cpu",
    cpu_max: "cpu",
    memory_max: "memory",
    memory_swap_max: "memory",
    pids_max: "pids",
    io_weight: "blkio",
    cpuset_cpus: "cpuset",
    cpuset_mems: "cpuset"
  }

  @doc """
  Turn a settings map into the controllers to enable and the
  `{file, value}` writes to make, in a stable order.

  `v1_controllers` lists the controllers bound to cgroup v1 hierarchies on
  the host (see `v1_controllers/0`); settings for those are written to the
  v1 files (`memory_max` → `memory.limit_in_bytes`, `cpu_max` →
  `cpu.cfs_period_us` and `cpu.cfs_quota_us`, `cpu_weight` → `cpu.shares`
  (weight × 1024 / 100), `pids_max` → `pids.max`, `io_weight` →
  `blkio.weight` (10..1000), `cpuset_*` → `cpuset.*`, `memory_swap_max` →
  `memory.memsw.limit_in_bytes` (memory + swap, so it needs an integer
  `memory_max`)).

  Raises `ArgumentError` for an unknown key, a value of the wrong shape, or
  a key with no v1 equivalent whose controller is bound to v1.

      iex> MuonTrap.Cgroup.to_writes(%{memory_max: 1_000_000, cpu_max: {50_000, 100_000}})
      {["cpu", "memory"], [{"cpu.max", "50000 100000"}, {"memory.max", "1000000"}]}

      iex> MuonTrap.Cgroup.to_writes(%{memory_max: :max, cpu_weight: 50}, ["cpu", "cpuacct", "memory"])
      {["cpu", "cpuacct", "memory"], [{"cpu.shares", "512"}, {"memory.limit_in_bytes", "-1"}]}
  """
  @spec to_writes(settings(), [String.t()]) ::
          {[String.t()], [{String.t(), String.t()}]}
  def to_writes(settings, v1_controllers \\ [])

  def to_writes(settings, v1_controllers) when is_map(settings) do
    writes =
      settings
      |> Enum.sort()
      |> Enum.map(fn {key, value} ->
        case Map.fetch(@knobs, key) do
          {:ok, {controller, file, kind}} ->
            encoded = encode!(key, kind, value)
            v1 = Map.get(@v1_controller, key)

            cond do
              v1 != nil and v1 in v1_controllers ->
                {v1, v1_writes(key, value, settings)}

              controller in v1_controllers ->
                raise ArgumentError,
                      "the :cgroup setting #{inspect(key)} has no cgroup v1 equivalent, and the " <>
                        "#{controller} controller is bound to cgroup v1 on this host; " <>
                        "settings available on v1: #{inspect(Map.keys(@v1_controller) |> Enum.sort())}"

              true ->
                {controller, [{file, encoded}]}
            end

          :error ->
            raise ArgumentError,
                  "unknown cgroup config field #{inspect(key)}; expected one of #{inspect(keys())}"
        end
      end)

    controllers = writes |> Enum.map(&elem(&1, 0)) |> Enum.uniq()

    # cpu.stat's usage comes from cpuacct on v1.
    controllers =
      if "cpu" in controllers and "cpu" in v1_controllers and "cpuacct" in v1_controllers,
        do: ["cpuacct" | controllers],
        else: controllers

    {controllers |> Enum.uniq() |> Enum.sort(), Enum.flat_map(writes, &elem(&1, 1))}
  end

  def to_writes(other, _v1_controllers) do
    raise ArgumentError, "the :cgroup option must be a map, got: #{inspect(other)}"
  end

  defp v1_writes(:cpu_weight, w, _), do: [{"cpu.shares", Integer.to_string(div(w * 1024, 100))}]
  defp v1_writes(:cpu_max, :max, _), do: [{"cpu.cfs_quota_us", "-1"}]

  defp v1_writes(:cpu_max, {quota, period}, _),
    do: [
      {"cpu.cfs_period_us", Integer.to_string(period)},
      {"cpu.cfs_quota_us", Integer.to_string(quota)}
    ]

  defp v1_writes(:memory_max, :max, _), do: [{"memory.limit_in_bytes", "-1"}]
  defp v1_writes(:memory_max, n, _), do: [{"memory.limit_in_bytes", Integer.to_string(n)}]
  defp v1_writes(:memory_swap_max, :max, _), do: [{"memory.memsw.limit_in_bytes", "-1"}]

  defp v1_writes(:memory_swap_max, n, settings) do
    case Map.get(settings, :memory_max) do
      m when is_integer(m) ->
        [{"memory.memsw.limit_in_bytes", Integer.to_string(m + n)}]

      _ ->
        raise ArgumentError,
              "on cgroup v1, :memory_swap_max needs an integer :memory_max " <>
                "(v1 limits memory and swap together, in memory.memsw.limit_in_bytes)"
    end
  end

  defp v1_writes(:pids_max, v, _), do: [{"pids.max", to_string(v)}]

  defp v1_writes(:io_weight, w, _) when w in 10..1000,
    do: [{"blkio.weight", Integer.to_string(w)}]

  defp v1_writes(:io_weight, w, _),
    do: bad_value!(:io_weight, w, "an integer in 10..1000 on cgroup v1 (blkio.weight)")

  defp v1_writes(:cpuset_cpus, v, _), do: [{"cpuset.cpus", v}]
  defp v1_writes(:cpuset_mems, v, _), do: [{"cpuset.mems", v}]

  @doc """
  The host's cgroup layout, detected once from `/proc/self/mountinfo` and
  `/proc/self/cgroup`:
  `%{kind: :v2 | :hybrid | :v1 | :none, v2: hierarchy | nil, v1: [hierarchy]}`,
  each hierarchy `%{mount: path, controllers: [name], own: path_of_the_beam | nil}`.
  """
  @spec layout() :: map()
  def layout do
    case :persistent_term.get({__MODULE__, :layout}, nil) do
      nil ->
        layout = MuonTrap.Nif.layout()
        :persistent_term.put({__MODULE__, :layout}, layout)
        layout

      layout ->
        layout
    end
  end

  @doc "The controllers bound to cgroup v1 hierarchies on this host (`[]` on pure v2)."
  @spec v1_controllers() :: [String.t()]
  def v1_controllers do
    layout().v1
    |> Enum.flat_map(& &1.controllers)
    |> Enum.reject(&String.starts_with?(&1, "name="))
    |> Enum.sort()
  end

  @doc """
  Kill whatever is left in the group of validated `options` and remove its
  directories in every hierarchy; for when the port binary died (e.g. was
  SIGKILLed) before doing it. Returns `:ok` without a group.
  """
  @spec cleanup(map()) :: :ok | {:error, term()}
  def cleanup(%{cgroup_path: path} = options) do
    case MuonTrap.Nif.cleanup(path, Map.get(options, :cgroup_beneath_beam, false)) do
      {:ok, []} -> :ok
      {:ok, left} -> {:error, {:not_removed, left}}
      {:error, reason} -> {:error, reason}
    end
  end

  def cleanup(_options), do: :ok

  defp encode!(_key, {:range, lo, hi}, v) when is_integer(v) and v >= lo and v <= hi,
    do: Integer.to_string(v)

  defp encode!(_key, :cpu_max, :max), do: "max"

  defp encode!(_key, :cpu_max, {quota, period})
       when is_integer(quota) and quota > 0 and is_integer(period) and period > 0,
       do: "#{quota} #{period}"

  defp encode!(_key, :boolean, true), do: "1"
  defp encode!(_key, :boolean, false), do: "0"

  defp encode!(_key, kind, v) when kind in [:bytes, :bytes_or_max] and is_integer(v) and v >= 0,
    do: Integer.to_string(v)

  defp encode!(_key, :bytes_or_max, :max), do: "max"

  defp encode!(key, :cpu_list, v) when is_binary(v) do
    if v =~ ~r/\A[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*\z/ do
      v
    else
      bad_value!(key, v, "a range string such as \"0-3,5\"")
    end
  end

  defp encode!(key, kind, v), do: bad_value!(key, v, describe(kind))

  defp describe({:range, lo, hi}), do: "an integer in #{lo}..#{hi}"
  defp describe(:cpu_max), do: ":max or {quota_us, period_us} with positive integers"
  defp describe(:boolean), do: "a boolean"
  defp describe(:bytes), do: "a non-negative integer"
  defp describe(:bytes_or_max), do: "a non-negative integer or :max"
  defp describe(:cpu_list), do: "a range string such as \"0-3,5\""

  defp bad_value!(key, value, expected) do
    raise ArgumentError,
          "invalid value for :cgroup setting #{inspect(key)}: #{inspect(value)}, expected #{expected}"
  end

  @doc """
  Check that `path` is a relative cgroup path that stays inside the cgroup
  mount. Returns the path or raises `ArgumentError`.

      iex> MuonTrap.Cgroup.validate_path!("muontrap/test", :cgroup_path)
      "muontrap/test"
  """
  @spec validate_path!(term(), atom()) :: String.t()
  def validate_path!(path, option) when is_binary(path) do
    parts = String.split(path, "/")

    cond do
      path == "" or String.starts_with?(path, "/") ->
        raise ArgumentError,
              "#{inspect(option)} must be a path relative to the cgroup mount, got: #{inspect(path)}"

      String.contains?(path, <<0>>) or Enum.any?(parts, &(&1 in ["", ".", ".."])) ->
        raise ArgumentError,
              "#{inspect(option)} must not contain empty, \".\" or \"..\" components or NUL, got: #{inspect(path)}"

      true ->
        path
    end
  end

  def validate_path!(other, option) do
    raise ArgumentError, "#{inspect(option)} must be a string, got: #{inspect(other)}"
  end

  @doc "A fresh, unique sub-group path beneath `base`."
  @spec random_path(String.t()) :: String.t()
  def random_path(base) do
    # The OS pid and a per-VM counter make it unique; the random part keeps
    # a restarted VM that reuses an OS pid off a leaked directory's name.
    suffix = "#{System.pid()}-#{System.unique_integer([:positive])}-#{:rand.uniform(0xFFFFFF)}"
    base <> "/" <> suffix
  end
end
