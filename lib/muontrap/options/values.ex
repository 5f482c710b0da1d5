defmodule MuonTrap.Options.Values do
  @moduledoc false
  # Checks of option values that take more than a guard: environment
  # pairs and user or group ids.

  # The port binary's bound for every number it takes (u32).
  @u32_max 4_294_967_295

  @doc "An `:env` value as `{name, value | nil}` pairs, or `ArgumentError`."
  @spec env!(term()) :: [{String.t(), String.t() | nil}]
  def env!(env) when is_list(env) or is_map(env) do
    Enum.map(env, fn
      {k, v} when is_binary(k) and (is_binary(v) or is_nil(v)) ->
        if String.contains?(k, ["=", <<0>>]) or (is_binary(v) and String.contains?(v, <<0>>)) do
          raise ArgumentError, "invalid environment variable #{inspect(k)}=#{inspect(v)}"
        end

        {k, v}

      other ->
        raise ArgumentError,
              "invalid environment key-value #{inspect(other)}, expected binary names and binary or nil values"
    end)
  end

  def env!(other) do
    raise ArgumentError, "invalid value for option :env: #{inspect(other)}"
  end

  @doc """
  A `:uid`, `:gid` or `:groups` entry: a name or an id, never 0 (names
  are resolved by the port binary; 0 is refused here so no launch is ever
  attempted with root privileges), or `ArgumentError`.
  """
  @spec id!(atom(), term()) :: pos_integer() | String.t()
  def id!(key, 0) do
    what =
      if key == :groups,
        do: "invalid :groups entry",
        else: "invalid value for option #{inspect(key)}"

    raise ArgumentError, "#{what}: 0 (root) is refused, MuonTrap only drops privileges"
  end

  # (uid_t)-1 means "no change" to setuid/setgid: never an id to run as.
  def id!(_key, v) when v in 1..(@u32_max - 1), do: v

  def id!(key, v) when is_binary(v) do
    if v != "" and v =~ ~r/\A[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?\z/, do: v, else: bad_id!(key, v)
  end

  def id!(key, v), do: bad_id!(key, v)

  defp bad_id!(key, v) do
    what =
      if key == :groups,
        do: "invalid :groups entry",
        else: "invalid value for option #{inspect(key)}"

    raise ArgumentError,
          "#{what}: #{inspect(v)}, expected a name or an id in 1..#{@u32_max - 1}"
  end
end
