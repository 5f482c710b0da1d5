defmodule Mix.Tasks.Compile.MuontrapNative.Toolchain do
  @moduledoc """
  Which cargo and rustc build muontrap, whether that rustc has the standard
  library of the target, and what to tell the user when something is
  missing: one message that says what to install, never cargo's output as
  the only clue.
  """

  alias Mix.Tasks.Compile.MuontrapNative.Target

  @doc """
  The cargo to run: `CARGO` (a path, or a name looked up in PATH), else
  `cargo` from PATH; nil if there is none.
  """
  def cargo(env) do
    case present(env, "CARGO") do
      nil -> System.find_executable("cargo")
      cargo -> if String.contains?(cargo, "/"), do: cargo, else: System.find_executable(cargo)
    end
  end

  @doc """
  The rustc that cargo must use when it is not the one in PATH: `RUSTC`,
  else the `rustc` beside a `CARGO` given as a path (Debian's
  `/usr/bin/cargo` with its `/usr/bin/rustc`, not rustup's proxy that
  comes first in PATH); nil otherwise.
  """
  def rustc_override(env) do
    cond do
      rustc = present(env, "RUSTC") ->
        rustc

      (cargo = present(env, "CARGO")) && String.contains?(cargo, "/") ->
        beside = Path.join(Path.dirname(cargo), "rustc")
        if File.regular?(beside), do: beside

      true ->
        nil
    end
  end

  @doc "The rustc cargo will run."
  def rustc(env), do: rustc_override(env) || System.find_executable("rustc")

  @doc "The message for a cargo that cannot be found (`cargo` is what `cargo/1` returned)."
  def no_cargo_message(env, cargo) do
    how =
      "install Rust 1.91 or later with cargo (rustup; or on Debian 12 " <>
        "`apt-get install rustc-web cargo-web`), or set CARGO to cargo's path"

    case present(env, "CARGO") do
      nil -> "muontrap: cargo was not found in PATH, and muontrap's Rust code needs it: " <> how
      var -> "muontrap: CARGO=#{var} is not an executable (#{inspect(cargo)}): " <> how
    end
  end

  @doc """
  The message for a linker the build needs that cannot be found, or nil.
  Cargo links with the C compiler: `cc` for the host (build scripts and
  proc macros are host programs, in a cross build too) unless
  `CARGO_TARGET_<HOST>_LINKER` names another; for a cross build also the
  target's linker (`CARGO_TARGET_<TRIPLE>_LINKER`, else `Target.linker/3`'s
  `CC` or `$CROSSCOMPILE-gcc`). Without one cargo fails after its first
  build script with only "linker `cc` not found". Nil, not a guess, when a
  cargo config file in `root` or above or in `CARGO_HOME`, or RUSTFLAGS,
  may choose the linker: cargo reads those, this does not.
  """
  @spec missing_linker(map, String.t() | nil, String.t() | nil, Path.t()) :: String.t() | nil
  def missing_linker(env, triple, host, root) do
    unless linker_configured?(env, root) do
      cross = if triple not in [nil, host], do: [target_linker(env, triple, host)], else: []

      Enum.find_value([host_linker(env, host) | cross], fn {linker, from, for_triple} ->
        unless executable?(linker), do: no_linker_message(linker, from, for_triple)
      end)
    end
  end

  defp host_linker(env, host) do
    var = host && Target.linker_var(host)

    case var && present(env, var) do
      nil -> {"cc", :default, host}
      linker -> {linker, var, host}
    end
  end

  defp target_linker(env, triple, host) do
    var = Target.linker_var(triple)

    cond do
      linker = present(env, var) -> {linker, var, triple}
      linker = Target.linker(env, triple, host) -> {linker, linker_source(env), triple}
      true -> {"cc", :default, triple}
    end
  end

  defp linker_source(env) do
    if present(env, "CC"), do: "CC", else: "CROSSCOMPILE, with -gcc appended"
  end

  defp linker_configured?(env, root) do
    flags =
      for {name, value} <- env,
          name in ~w(RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS) or
            (String.starts_with?(name, "CARGO_TARGET_") and String.ends_with?(name, "_RUSTFLAGS")),
          do: value

    cargo_home = present(env, "CARGO_HOME") || Path.expand("~/.cargo")

    files =
      for dir <- [cargo_home | Enum.map(ancestors(root), &Path.join(&1, ".cargo"))],
          name <- ["config", "config.toml"],
          do: Path.join(dir, name)

    Enum.any?(flags, &(&1 =~ "linker")) or
      Enum.any?(files, fn file ->
        case File.read(file) do
          {:ok, text} -> text =~ ~r/^\s*linker\s*=/m
          {:error, _} -> false
        end
      end)
  end

  defp ancestors(dir) do
    parent = Path.dirname(dir)
    if parent == dir, do: [dir], else: [dir | ancestors(parent)]
  end

  # A path (CC=/opt/x-gcc) or a name looked up in PATH, as cargo runs it.
  defp executable?(linker), do: System.find_executable(linker) != nil

  @doc false
  def no_linker_message(linker, :default, _triple) do
    "muontrap: the C compiler `#{linker}` was not found in PATH, and cargo needs it to " <>
      "link muontrap's Rust code: #{c_compiler_hint(:os.type())}"
  end

  def no_linker_message(linker, from, triple) do
    "muontrap: the linker for #{triple}, `#{linker}` (from #{from}), was not found: " <>
      "install the C compiler it names (for a Nerves board, its toolchain comes with " <>
      "the Nerves system), or set #{Target.linker_var(triple)} to the linker to use"
  end

  @doc false
  def c_compiler_hint({:unix, :darwin}),
    do: "install Xcode's command line tools with `xcode-select --install`"

  def c_compiler_hint({:unix, :linux}) do
    "install one: on Debian or Ubuntu `apt-get install gcc` (or `build-essential`), " <>
      "on Fedora `dnf install gcc`, on Alpine `apk add gcc musl-dev`"
  end

  def c_compiler_hint(_os), do: "install a C compiler whose driver is called `cc`"

  @doc """
  `:ok` if `rustc` can build for `triple`, else `{:error, message}` naming
  the triple and the command that installs its standard library: `rustup
  target add` for a rustup toolchain, the Debian package of exactly the
  installed compiler's version for Debian's, else where it belongs.
  """
  def check_std(rustc, triple, root) do
    case System.cmd(rustc, ["--print", "sysroot", "--print", "target-libdir", "--target", triple],
           cd: root,
           stderr_to_stdout: true
         ) do
      {out, 0} ->
        [sysroot, libdir | _] = String.split(out, "\n") ++ ["", ""]
        if has_core?(libdir), do: :ok, else: {:error, missing_std_message(rustc, triple, sysroot)}

      {out, _} ->
        {:error,
         "muontrap: #{rustc} does not know the Rust target #{triple} " <>
           "(`rustc --print target-list` lists those it knows): #{String.trim(out)}"}
    end
  rescue
    _ in ErlangError ->
      {:error, "muontrap: cannot run rustc (#{rustc}) to check target #{triple}"}
  end

  defp has_core?(libdir), do: Path.wildcard(Path.join(libdir, "libcore-*.rlib")) != []

  @doc false
  def missing_std_message(rustc, triple, sysroot) do
    "muontrap: the Rust standard library for #{triple} is not installed for #{rustc} " <>
      "(sysroot #{sysroot}): " <> install_hint(rustc, triple, sysroot)
  end

  defp install_hint(rustc, triple, sysroot) do
    cond do
      rustup_toolchain = rustup_toolchain(sysroot) ->
        "run `rustup target add --toolchain #{rustup_toolchain} #{triple}`"

      package = debian_package(rustc, sysroot) ->
        debian_hint(package, triple)

      true ->
        "install it into #{Path.join([sysroot, "lib/rustlib", triple])} " <>
          "with the toolchain's own installer, or point RUSTC and CARGO at a toolchain that has it"
    end
  end

  # rustup keeps each toolchain in $RUSTUP_HOME/toolchains/<name>.
  defp rustup_toolchain(sysroot) do
    case Path.split(sysroot) |> Enum.reverse() do
      [name, "toolchains" | _] -> if System.find_executable("rustup"), do: name
      _ -> nil
    end
  end

  # {package, version} of the Debian package that ships this rustc.
  defp debian_package(rustc, "/usr") do
    with path when is_binary(path) <- System.find_executable(rustc),
         {owner, 0} <- dpkg_query(["-S", resolve(path)]),
         [package | _] <- String.split(owner, ":", parts: 2),
         {version, 0} <- dpkg_query(["-W", "-f", "${Version}", package]) do
      {package, String.trim(version)}
    else
      _ -> nil
    end
  end

  defp debian_package(_rustc, _sysroot), do: nil

  defp debian_hint({package, version}, triple) do
    std = if package == "rustc-web", do: "libstd-rust-web-dev", else: "libstd-rust-dev"

    case Target.debian_arch(triple) do
      nil ->
        "Debian has no #{std} for #{triple}; install a Rust toolchain with rustup and run " <>
          "`rustup target add #{triple}`, then set CARGO and RUSTC to it"

      arch ->
        "run `dpkg --add-architecture #{arch} && apt-get update && " <>
          "apt-get install #{std}:#{arch}=#{version}` (the exact version of #{package})"
    end
  end

  defp dpkg_query(args) do
    if System.find_executable("dpkg-query"),
      do: System.cmd("dpkg-query", args, stderr_to_stdout: true),
      else: {"", 1}
  end

  defp resolve(path) do
    case :file.read_link_all(path) do
      {:ok, target} -> resolve(Path.expand(to_string(target), Path.dirname(path)))
      {:error, _} -> path
    end
  end

  defp present(env, name), do: Mix.Tasks.Compile.MuontrapNative.Target.present(env, name)
end
