defmodule MuonTrap.Cgroup do
  @moduledoc false
  # Translates the `:cgroup` settings map into controllers and interface-file
  # writes (cgroup v2, or v1 where the controller is bound to v1), detects
  # the host's cgroup layout (once per VM), and checks and builds cgroup
  # paths.
  #
  # Keys mirror the v2 interface files with `.` replaced by `_`, so the map
  # returned by `MuonTrap.Daemon.cgroup_config/1` can be passed back in.
  #
  # The table of those keys, their files, the values they take and their v1
  # equivalents is kept once, in Rust (`native/muontrap_cgroup`, modules
  # `knobs`, `settings` and `v1`), and this module asks the NIF for it. The
  # NIF has to have it anyway: `cgroup_config/1` reads a group's settings
  # back through it on every call, and the v1 conversions (such as
  # `cpu.weight` ↔ `cpu.shares`) are only exact inverses if both directions
  # are written side by side. A copy here would be a second table to keep in
  # step; what is left here is turning the NIF's answer into `ArgumentError`
  # messages.

  alias MuonTrap.Nif

  @typedoc "The `:cgroup` settings map; see `MuonTrap.Daemon.cgroup_config/1`."
  @type settings :: %{optional(atom()) => term()}

  @doc "The keys accepted in the `:cgroup` settings map."
  @spec keys() :: [atom()]
  def keys, do: Enum.sort(Nif.cgroup_keys(false))

  @doc """
  Turn a settings map into the controllers to enable and the
  `{file, value}` writes to make, in a stable order.

  `v1_controllers` lists the controllers bound to cgroup v1 hierarchies on
  the host (see `v1_controllers/0`); settings for those go to their v1
  files instead, as docs/cgroups.md lists (for example `cpu_weight` →
  `cpu.shares`; `memory_swap_max` needs an integer `memory_max` there, as
  v1 limits memory and swap together).

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
    case Nif.cgroup_writes(Enum.sort(settings), v1_controllers) do
      {:ok, writes} -> writes
      {:error, reason} -> raise ArgumentError, message(reason)
    end
  end

  def to_writes(other, _v1_controllers) do
    raise ArgumentError, "the :cgroup option must be a map, got: #{inspect(other)}"
  end

  @doc false
  # The :cgroup map's one translation per start (MuonTrap.Options): made
  # for pure v2 when the options are validated (which checks every key and
  # value, whatever the host), kept with the v1 controllers it was made for,
  # and made again only for a host that binds controllers to v1
  # (check_host!/1); the supervisor's arguments use what is kept.
  @spec translate(settings(), {[String.t()] | nil, term()} | nil) ::
          {[String.t()], {[String.t()], [{String.t(), String.t()}]}}
  def translate(settings, kept \\ nil)
  def translate(settings, nil), do: {[], to_writes(settings, [])}

  def translate(settings, {made_for, _writes} = kept) do
    case v1_controllers() do
      ^made_for -> kept
      v1 -> {v1, to_writes(settings, v1)}
    end
  end

  defp message({:unknown_key, key}),
    do: "unknown cgroup config field #{inspect(key)}; expected one of #{inspect(keys())}"

  defp message({:bad_value, key, value, expected}),
    do:
      "invalid value for :cgroup setting #{inspect(key)}: #{inspect(value)}, expected #{expected}"

  defp message({:no_v1_equivalent, key, controller}) do
    "the :cgroup setting #{inspect(key)} has no cgroup v1 equivalent, and the " <>
      "#{controller} controller is bound to cgroup v1 on this host; " <>
      "settings available on v1: #{inspect(Enum.sort(Nif.cgroup_keys(true)))}"
  end

  defp message(:swap_needs_memory_max) do
    "on cgroup v1, :memory_swap_max needs an integer :memory_max " <>
      "(v1 limits memory and swap together, in memory.memsw.limit_in_bytes)"
  end

  @doc """
  The host's cgroup layout, from `/proc/self/mountinfo` and
  `/proc/self/cgroup`:
  `%{kind: :v2 | :hybrid | :v1 | :none, v2: hierarchy | nil, v1: [hierarchy]}`,
  each hierarchy `%{mount: path, controllers: [name], own: path_of_the_beam | nil}`.

  Once a cgroup filesystem is found, the layout is kept for the VM's life;
  `:none` is looked up again on the next call, so a cgroup filesystem
  mounted after the VM started is seen.
  """
  @spec layout() :: map()
  def layout, do: host().layout

  @doc "The controllers bound to cgroup v1 hierarchies on this host (`[]` on pure v2)."
  @spec v1_controllers() :: [String.t()]
  def v1_controllers, do: host().v1_controllers

  # The layout and what every start derives from it, kept once per VM.
  # The NIF detects the layout once (native/muontrap_nif/src/cgroup_fs.rs,
  # by the same rule); this copy saves a dirty-scheduler call per start.
  defp host do
    case :persistent_term.get({__MODULE__, :host}, nil) do
      nil ->
        layout = Nif.layout()
        host = %{layout: layout, v1_controllers: v1_controllers(layout)}
        if layout.kind != :none, do: :persistent_term.put({__MODULE__, :host}, host)
        host

      host ->
        host
    end
  end

  defp v1_controllers(layout) do
    layout.v1
    |> Enum.flat_map(& &1.controllers)
    |> Enum.reject(&String.starts_with?(&1, "name="))
    |> Enum.sort()
  end

  @doc """
  Kill whatever is left in the group of validated `options` and remove its
  directories in every hierarchy, and then the parent levels a supervisor
  made that are now empty, as the supervisor does (the NIF does both,
  with the supervisor's own code: `native/muontrap_cgroup`, modules
  `teardown` and `parents`); for when it died (e.g. was SIGKILLed) before
  doing it. Returns `:ok` without a group.
  """
  @spec cleanup(map()) :: :ok | {:error, term()}
  def cleanup(%{cgroup_path: path} = options) do
    case Nif.cleanup(path, Map.get(options, :beneath_own_cgroup, false)) do
      {:ok, []} -> :ok
      {:ok, left} -> {:error, {:not_removed, left}}
      {:error, reason} -> {:error, reason}
    end
  end

  def cleanup(_options), do: :ok

  @doc """
  Check that `path` is a relative cgroup path that stays inside the cgroup
  mount. Returns the path or raises `ArgumentError`.

      iex> MuonTrap.Cgroup.validate_path!("muontrap/test", :cgroup_path)
      "muontrap/test"
  """
  @spec validate_path!(term(), atom()) :: String.t()
  def validate_path!(path, option) when is_binary(path) do
    # The check the supervisor and the NIF make (native/muontrap_cgroup,
    # module `path`), with the messages of this option.
    case Nif.cgroup_path_check(path) do
      :ok ->
        path

      {:error, reason} when reason in [:empty, :absolute] ->
        raise ArgumentError,
              "#{inspect(option)} must be a path relative to the cgroup mount, got: #{inspect(path)}"

      {:error, _component_or_nul} ->
        raise ArgumentError,
              "#{inspect(option)} must not contain empty, \".\" or \"..\" components or NUL, got: #{inspect(path)}"
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
