defmodule Mix.Tasks.Compile.MuontrapNative.Target do
  @moduledoc """
  Which Rust target `mix compile` builds muontrap for, and how cargo links
  for it (docs/nerves.md).

  Pure functions of the environment (a map of variable names to values) so
  that they can be tested without a cross toolchain.
  """

  # The variables Nerves' toolchains export, by architecture as gcc names it.
  @abis %{
    "aarch64" => ~w(gnu musl),
    "x86_64" => ~w(gnu musl),
    "riscv64" => ~w(gnu musl),
    "arm" => ~w(gnueabihf musleabihf gnueabi musleabi)
  }

  # Rust's name for the ARM architecture version (its triples' first part).
  @arm_arch %{v7: "armv7", v6: "arm", v5te: "armv5te"}

  # Debian's architecture whose libstd-rust-*-dev holds a target's standard
  # library (the triple Debian's rustc was built for on it).
  @debian_arch %{
    "x86_64-unknown-linux-gnu" => "amd64",
    "aarch64-unknown-linux-gnu" => "arm64",
    "armv7-unknown-linux-gnueabihf" => "armhf",
    "armv5te-unknown-linux-gnueabi" => "armel",
    "i686-unknown-linux-gnu" => "i386",
    "riscv64gc-unknown-linux-gnu" => "riscv64",
    "powerpc64le-unknown-linux-gnu" => "ppc64el",
    "s390x-unknown-linux-gnu" => "s390x"
  }

  @doc """
  The Rust target triple to build for: `{:ok, nil}` for the host, `{:ok,
  triple}`, or `{:error, message}` for a board the mapping does not know.

  In order: `MUONTRAP_CARGO_TARGET` (the override, for boards not mapped
  here), cargo's own `CARGO_BUILD_TARGET`, then, under a `MIX_TARGET`
  other than `host`, what Nerves exports: `TARGET_ARCH`, `TARGET_OS`,
  `TARGET_ABI` and `TARGET_CPU`, or the toolchain prefix (`CROSSCOMPILE`,
  else `CC` without `-gcc`, e.g. `aarch64-nerves-linux-gnu`) for those
  that are not set.

      TARGET_ARCH  TARGET_ABI             TARGET_CPU                triple
      aarch64      gnu | musl             any                       aarch64-unknown-linux-gnu | -musl
      arm          gnueabihf | musleabihf cortex_a*                 armv7-unknown-linux-gnueabihf | -musleabihf
      arm          gnueabihf | musleabihf arm1176*, arm1136*        arm-unknown-linux-gnueabihf | -musleabihf
      arm          gnueabi | musleabi     arm926*                   armv5te-unknown-linux-gnueabi | -musleabi
      x86_64       gnu | musl             any                       x86_64-unknown-linux-gnu | -musl
      riscv64      gnu | musl             any                       riscv64gc-unknown-linux-gnu | -musl

  An ARM board without a known `TARGET_CPU` takes its version from the
  prefix (`armv7-…`, `armv6-…`, `armv5te-…`), else it is an error: ARMv7
  code does not run on an ARMv6 board.
  """
  def rust_triple(env, mix_target) do
    cond do
      present(env, "MUONTRAP_CARGO_TARGET") -> {:ok, present(env, "MUONTRAP_CARGO_TARGET")}
      present(env, "CARGO_BUILD_TARGET") -> {:ok, present(env, "CARGO_BUILD_TARGET")}
      mix_target == :host -> {:ok, nil}
      true -> nerves_triple(env, mix_target)
    end
  end

  defp nerves_triple(env, mix_target) do
    parts = if prefix = toolchain_prefix(env), do: String.split(prefix, "-"), else: []
    prefix_arch = List.first(parts)
    arch = present(env, "TARGET_ARCH") || prefix_arch

    described = %{
      arch: arch && normalize_arch(arch),
      os: present(env, "TARGET_OS") || if("linux" in parts, do: "linux"),
      abi: present(env, "TARGET_ABI") || if(length(parts) > 2, do: List.last(parts)),
      cpu: present(env, "TARGET_CPU"),
      prefix_arch: prefix_arch
    }

    cond do
      arch == nil -> {:ok, nil}
      triple = triple(described) -> {:ok, triple}
      true -> {:error, unknown_message(env, mix_target)}
    end
  end

  defp normalize_arch("arm" <> _), do: "arm"
  defp normalize_arch(arch), do: arch

  defp triple(%{os: "linux", arch: "arm", abi: abi} = d) do
    with true <- abi in @abis["arm"],
         version when version != nil <- arm_version(d.cpu, d.prefix_arch),
         true <- version != :v5te or not String.ends_with?(abi, "hf") do
      "#{@arm_arch[version]}-unknown-linux-#{abi}"
    else
      _ -> nil
    end
  end

  defp triple(%{os: "linux", arch: arch, abi: abi}) when is_map_key(@abis, arch) do
    if abi in @abis[arch] do
      rust_arch = if arch == "riscv64", do: "riscv64gc", else: arch
      "#{rust_arch}-unknown-linux-#{abi}"
    end
  end

  defp triple(_described), do: nil

  # Nerves names CPUs as gcc's -mcpu does, with underscores.
  defp arm_version(cpu, prefix_arch) do
    cpu = cpu && String.replace(cpu, "-", "_")

    cond do
      cpu == nil -> arm_version_of_prefix(prefix_arch)
      String.starts_with?(cpu, "cortex_a") -> :v7
      String.starts_with?(cpu, ["arm1176", "arm1136"]) -> :v6
      String.starts_with?(cpu, "arm926") -> :v5te
      true -> arm_version_of_prefix(prefix_arch)
    end
  end

  defp arm_version_of_prefix("armv7" <> _), do: :v7
  defp arm_version_of_prefix("armv6" <> _), do: :v6
  defp arm_version_of_prefix("armv5" <> _), do: :v5te
  defp arm_version_of_prefix(_), do: nil

  defp unknown_message(env, mix_target) do
    seen =
      for var <- ~w(TARGET_ARCH TARGET_OS TARGET_ABI TARGET_CPU CROSSCOMPILE CC),
          value = present(env, var),
          do: "#{var}=#{value}"

    "muontrap: no Rust target is known for MIX_TARGET=#{mix_target} " <>
      "(#{Enum.join(seen, " ")}): set MUONTRAP_CARGO_TARGET to the board's Rust target " <>
      "triple (`rustc --print target-list` lists them), e.g. " <>
      "MUONTRAP_CARGO_TARGET=armv7-unknown-linux-gnueabihf"
  end

  @doc """
  The toolchain prefix Nerves describes, e.g. `aarch64-nerves-linux-gnu`:
  the last part of `CROSSCOMPILE`, else of `CC` without `-gcc` or `-cc`.
  """
  def toolchain_prefix(env) do
    cond do
      cross = present(env, "CROSSCOMPILE") ->
        Path.basename(cross)

      cc = present(env, "CC") ->
        base = Path.basename(cc)
        trimmed = String.replace_suffix(String.replace_suffix(base, "-gcc", ""), "-cc", "")
        if trimmed != base, do: trimmed

      true ->
        nil
    end
  end

  @doc """
  The linker for a cross build, or nil to leave it to cargo's
  configuration: `CC` (Nerves sets it to its cross gcc), else
  `$CROSSCOMPILE-gcc`. None for a host build, or when
  `CARGO_TARGET_<TRIPLE>_LINKER` already says.
  """
  def linker(_env, nil, _host), do: nil
  def linker(_env, host, host), do: nil

  def linker(env, triple, _host) do
    cond do
      present(env, linker_var(triple)) -> nil
      cc = present(env, "CC") -> cc
      cross = present(env, "CROSSCOMPILE") -> cross <> "-gcc"
      true -> nil
    end
  end

  @doc "Cargo's variable for a triple's linker, e.g. `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER`."
  def linker_var(triple), do: cargo_target_var(triple, "LINKER")

  defp cargo_target_var(triple, name) do
    "CARGO_TARGET_#{triple |> String.upcase() |> String.replace(["-", "."], "_")}_#{name}"
  end

  @doc """
  Extra rustflags for the NIF, as the environment variable that carries
  them: on musl, where Rust links statically by default and then builds
  no `cdylib` at all, `-C target-feature=-crt-static`. Appended to
  `CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS` when the user set one (cargo
  reads only the first it finds), else to `CARGO_TARGET_<TRIPLE>_RUSTFLAGS`.
  """
  def nif_rustflags(env, triple) do
    if is_binary(triple) and triple =~ ~r/-linux-musl/ do
      flag = "-Ctarget-feature=-crt-static"

      cond do
        flags = Map.get(env, "CARGO_ENCODED_RUSTFLAGS") ->
          [{"CARGO_ENCODED_RUSTFLAGS", join(flags, "\x1f", flag)}]

        flags = Map.get(env, "RUSTFLAGS") ->
          [{"RUSTFLAGS", join(flags, " ", flag)}]

        true ->
          var = cargo_target_var(triple, "RUSTFLAGS")
          [{var, join(Map.get(env, var, ""), " ", flag)}]
      end
    else
      []
    end
  end

  defp join("", _sep, flag), do: flag
  defp join(flags, sep, flag), do: flags <> sep <> flag

  @doc """
  The NIF's file name as cargo makes it: `libmuontrap_nif.dylib` for an
  Apple target (or an Apple host without one), else `.so`. It is
  installed as `libmuontrap_nif.so` whatever the system: the name the BEAM
  loads (`:erlang.load_nif/2` appends `.so` on macOS too).
  """
  def nif_artifact(triple, os_type) do
    apple = if triple, do: triple =~ "-apple-", else: os_type == {:unix, :darwin}
    if apple, do: "libmuontrap_nif.dylib", else: "libmuontrap_nif.so"
  end

  @doc """
  Cargo feature arguments for `packages`: with `MUONTRAP_PORTABLE=1`, the
  port binary and the NIF are built on the portable path, without Linux's
  own facilities (docs/portability.md).
  """
  def feature_args(env, packages) do
    if present(env, "MUONTRAP_PORTABLE") in ["1", "true"] do
      for p <- packages, p in ~w(muontrap_port muontrap_nif), do: "--features=#{p}/portable"
    else
      []
    end
  end

  @doc "Debian's architecture name for a target triple, or nil if Debian has none."
  def debian_arch(triple), do: Map.get(@debian_arch, triple)

  @doc false
  # A variable that is set and not empty (Nerves and shells leave empty ones).
  def present(env, name) do
    case Map.get(env, name) do
      value when value in [nil, ""] -> nil
      value -> value
    end
  end
end
