defmodule MuonTrap.Platform do
  @moduledoc false
  # What this build of the library can do on this system, as the NIF reports
  # it (`platform` in `MuonTrap.Nif.constants/0`, native/muontrap_nif/src/
  # wire.rs): the one home of that table. What needs Linux's own facilities
  # (cgroups, sd_notify and the watchdog) raises one ArgumentError here,
  # naming the option and the platform, before anything starts
  # (docs/portability.md).

  @cgroup_options [:cgroup, :cgroup_base, :cgroup_path, :beneath_own_cgroup]

  @spec info() :: %{
          os: atom(),
          portable: boolean(),
          cgroups: boolean(),
          notify: boolean(),
          end_notices: boolean(),
          missing_rlimits: [atom()]
        }
  def info, do: MuonTrap.Nif.constants().platform

  # Raises for an option this platform cannot honour; `:ok` otherwise.
  @spec check_option!(atom(), term()) :: :ok
  def check_option!(:beneath_own_cgroup, false), do: :ok

  def check_option!(key, _value) when key in @cgroup_options,
    do: require!(:cgroups, "the option #{inspect(key)}")

  def check_option!(:ready, :notify), do: require!(:notify, "the option ready: :notify")
  def check_option!(:watchdog, _value), do: require!(:notify, "the option :watchdog")
  def check_option!(_key, _value), do: :ok

  # Raises unless the platform has `capability` (`:cgroups` or `:notify`),
  # naming `what` needs it.
  @spec require!(:cgroups | :notify, String.t()) :: :ok
  def require!(capability, what) do
    platform = info()

    if Map.fetch!(platform, capability) do
      :ok
    else
      raise ArgumentError,
            "#{what} needs Linux (#{facility(capability)}), " <>
              "which #{describe(platform)} does not have"
    end
  end

  # Whether `resource` is an rlimit this system lacks (`rttime` on macOS...).
  @spec missing_rlimit?(atom()) :: boolean()
  def missing_rlimit?(resource), do: resource in info().missing_rlimits

  @spec describe(map()) :: String.t()
  def describe(%{portable: true}), do: "this portable Linux build (MUONTRAP_PORTABLE=1)"
  def describe(%{os: :macos}), do: "macOS"
  def describe(%{os: :freebsd}), do: "FreeBSD"
  def describe(%{os: os}), do: to_string(os)

  defp facility(:cgroups), do: "cgroups"
  defp facility(:notify), do: "sd_notify"
end
