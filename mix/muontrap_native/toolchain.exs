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
