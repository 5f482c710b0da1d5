defmodule MuonTrap.Options.Values do
  @moduledoc false
  # Checks of option values that take more than a guard: environment
  # pairs and user or group ids.

  # The port binary's bound for every number it takes (u32); the one home
  # of this bound in Elixir: the other modules' guards read u32_max/0 into
  # an attribute at compile time.
  @u32_max 4_294_967_295

  @doc "The largest number the port binary takes for a millisecond or byte count (u32)."
  @spec u32_max() :: pos_integer()
  def u32_max, do: @u32_max

  @doc "An `:env` value as `{name, value | nil}` pairs, or `ArgumentError`."
  @spec env!(term()) :: [{String.t(), String.t() | nil}]
  def env!(env) when is_list(env) or is_map(env) do
    Enum.map(env, fn
      {k, v} when is_binary(k) and (is_binary(v) or is_nil(v)) ->
        if k == "" or String.contains?(k, ["=", <<0>>]) or
             (is_binary(v) and MuonTrap.Bytes.member?(v, 0)) do
          raise ArgumentError, "invalid environment variable #{inspect(k)}=#{inspect(v)}"
        end

        {k, v}

      other ->
        raise ArgumentError,
              "invalid environment key-value #{inspect(other)}, expected binary names and binary or nil values"
    end)
  end

  def env!(other) do
    raise ArgumentError,
          "invalid option :env with value #{inspect(other)}, expected a map or a list of {name, value}"
  end

  @doc """
  A `:uid`, `:gid` or `:groups` entry: a name or an id, never 0 (names
  are resolved by the port binary; 0 is refused here so no launch is ever
  attempted with root privileges), or `ArgumentError`.
  """
  @spec id!(atom(), term()) :: pos_integer() | String.t()
  def id!(key, 0),
    do:
      raise(ArgumentError, "#{invalid(key, 0)} (root) is refused, MuonTrap only drops privileges")

  # (uid_t)-1 means "no change" to setuid/setgid: never an id to run as.
  def id!(_key, v) when v in 1..(@u32_max - 1), do: v

  def id!(key, v) when is_binary(v) do
    if v != "" and v =~ ~r/\A[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?\z/, do: v, else: bad_id!(key, v)
  end

  def id!(key, v), do: bad_id!(key, v)

  defp bad_id!(key, v) do
    raise ArgumentError,
          "#{invalid(key, v)}, expected a name or an id in 1..#{@u32_max - 1}"
  end

  # MuonTrap 2.0's phrases: a :groups entry is named alone.
  defp invalid(:groups, v), do: "invalid :groups entry: #{inspect(v)}"
  defp invalid(key, v), do: "invalid option #{inspect(key)} with value #{inspect(v)}"

  @doc "A `:stop_signal`: any signal but SIGKILL and SIGSTOP, which cannot be handled."
  @spec stop_signal!(term()) :: MuonTrap.Signal.t()
  def stop_signal!(signal) do
    number = MuonTrap.Signal.number(signal)

    if number in [MuonTrap.Signal.number(:sigkill), MuonTrap.Signal.number(:sigstop)] do
      raise ArgumentError,
            "invalid option :stop_signal with value #{inspect(signal)}, a stop signal must be " <>
              "one the command can handle (not :sigkill or :sigstop; SIGKILL follows after :delay_to_sigkill)"
    end

    signal
  end

  @u64_max 18_446_744_073_709_551_615

  @doc """
  `:rlimits` as a map of resource to `{soft, hard}`, each an integer or
  `:infinity`; an integer or `:infinity` alone sets both.
  """
  @spec rlimits!(term()) :: %{
          atom() => {non_neg_integer() | :infinity, non_neg_integer() | :infinity}
        }
  def rlimits!(limits) when is_map(limits) or is_list(limits) do
    rlimits = MuonTrap.Nif.constants().rlimits

    Map.new(limits, fn
      {name, value} = other ->
        cond do
          name in rlimits -> {name, rlimit!(name, value)}
          MuonTrap.Platform.missing_rlimit?(name) -> missing_rlimit!(name)
          true -> bad_rlimit!(other)
        end

      other ->
        bad_rlimit!(other)
    end)
  end

  def rlimits!(other), do: bad_rlimit!(other)

  defp rlimit!(name, {soft, hard} = value) do
    if limit?(soft) and limit?(hard) and not above?(soft, hard),
      do: value,
      else: bad_rlimit!({name, value})
  end

  defp rlimit!(name, value),
    do: if(limit?(value), do: {value, value}, else: bad_rlimit!({name, value}))

  defp limit?(:infinity), do: true
  defp limit?(n), do: is_integer(n) and n in 0..@u64_max

  defp above?(:infinity, hard), do: hard != :infinity
  defp above?(_soft, :infinity), do: false
  defp above?(soft, hard), do: soft > hard

  defp missing_rlimit!(name) do
    raise ArgumentError,
          "invalid option :rlimits: #{MuonTrap.Platform.describe(MuonTrap.Platform.info())} " <>
            "has no rlimit #{inspect(name)}"
  end

  defp bad_rlimit!(what) do
    raise ArgumentError,
          "invalid option :rlimits with value #{inspect(what)}, expected a map or keyword of " <>
            "#{Enum.map_join(MuonTrap.Nif.constants().rlimits, ", ", &inspect/1)} to an integer, :infinity or " <>
            "{soft, hard} with soft <= hard"
  end
end
