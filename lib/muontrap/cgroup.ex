defmodule MuonTrap.Cgroup do
  @moduledoc """
  Translates the `:cgroup` settings map into cgroup v2 controllers and
  interface-file writes, and builds cgroup paths.

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

  @doc """
  Turn a settings map into the controllers to enable and the
  `{file, value}` writes to make, in a stable order.

  Raises `ArgumentError` for an unknown key or a value of the wrong shape.

      iex> MuonTrap.Cgroup.to_writes(%{memory_max: 1_000_000, cpu_max: {50_000, 100_000}})
      {["cpu", "memory"], [{"cpu.max", "50000 100000"}, {"memory.max", "1000000"}]}
  """
  @spec to_writes(settings()) :: {[String.t()], [{String.t(), String.t()}]}
  def to_writes(settings) when is_map(settings) do
    writes =
      settings
      |> Enum.sort()
      |> Enum.map(fn {key, value} ->
        case Map.fetch(@knobs, key) do
          {:ok, {controller, file, kind}} ->
            {controller, {file, encode!(key, kind, value)}}

          :error ->
            raise ArgumentError,
                  "unknown :cgroup setting #{inspect(key)}; expected one of #{inspect(keys())}"
        end
      end)

    controllers = writes |> Enum.map(&elem(&1, 0)) |> Enum.uniq() |> Enum.sort()
    {controllers, Enum.map(writes, &elem(&1, 1))}
  end

  def to_writes(other) do
    raise ArgumentError, "the :cgroup option must be a map, got: #{inspect(other)}"
  end

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
          "invalid :cgroup setting #{inspect(key)}: #{inspect(value)}, expected #{expected}"
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
