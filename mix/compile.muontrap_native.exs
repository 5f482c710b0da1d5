defmodule Mix.Tasks.Compile.MuontrapNative do
  @moduledoc false
  # Builds the Rust workspace (port binary, NIF and, in the test env, the test
  # helper) and installs the artifacts in the app's build dir
  # (_build/ENV/lib/muontrap/priv, where :code.priv_dir/1 finds them), never in
  # the source tree: a dependency's checkout may be read-only, and `mix clean`
  # removes what was built. Defined here because no hex package (rustler's mix
  # task, elixir_make) can be fetched; required by mix.exs, so it exists only
  # in Mix's VM and is never compiled into the muontrap application.
  use Mix.Task.Compiler

  alias Mix.Tasks.Compile.MuontrapNative.{Cargo, Target, Toolchain}

  @root Path.expand("..", __DIR__)
  @manifest "compile.muontrap_native"
  @stamp_version 2

  # What an older version of this compiler put in the source tree's priv/.
  @old_priv_files ~w(muontrap libmuontrap_nif.so muontrap.tmp libmuontrap_nif.so.tmp)

  # Environment that changes what cargo builds (besides CARGO_TARGET_* and
  # CARGO_PROFILE_*), including what Nerves exports for MIX_TARGET=<board>.
  @env_keys ~w(CARGO_BUILD_TARGET CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTFLAGS
               CARGO RUSTC RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTUP_TOOLCHAIN
               MUONTRAP_PLAIN_LINK MUONTRAP_CARGO_TARGET MUONTRAP_PORTABLE NERVES_SDK_SYSROOT
               TARGET_ARCH TARGET_CPU TARGET_OS TARGET_ABI CROSSCOMPILE CC)

  @impl true
  def run(args) do
    stamp = read_stamp()
    {facts, toolchain} = toolchain(stamp)
    keys = keys(toolchain)

    cond do
      "--force" in args or stale?(stamp, keys) ->
        build(keys, facts)

      stamp.facts != facts ->
        # Same toolchain found through other files (PATH, a rustup update
        # that changed nothing): remember them, so rustc is not asked again.
        write_stamp(%{stamp | facts: facts})
        :noop

      true ->
        :noop
    end
  end

  @impl true
  def manifests, do: [stamp_path()]

  @impl true
  def clean do
    # Where the artifacts are installed does not depend on the target.
    for {_src, dest} <- artifacts(target_dir(), nil), file <- [dest, dest <> ".tmp"] do
      File.rm(file)
    end

    File.rm(stamp_path())

    for dir <- [Mix.Project.build_path() | Path.wildcard(Path.join(build_root(), "*"))] do
      File.rm_rf(Path.join(dir, "muontrap_test_helper"))
    end

    # Cargo's cache, shared by every MIX_ENV; one the user chose is left alone.
    if target_dir() == default_target_dir(), do: File.rm_rf(target_dir())
    :ok
  end

  @doc false
  # Cargo's target dir: $CARGO_TARGET_DIR, else _build/cargo beside the
  # _build/ENV dirs, so every MIX_ENV and MIX_TARGET shares one cache (each
  # triple has its own subdirectory).
  def target_dir do
    case System.get_env("CARGO_TARGET_DIR") do
      dir when dir in [nil, ""] -> default_target_dir()
      dir -> Path.expand(dir)
    end
  end

  defp default_target_dir, do: Path.join(build_root(), "cargo")

  # _build for _build/dev; MIX_BUILD_PATH itself if set (it need not be in a
  # directory of build dirs).
  defp build_root do
    if System.get_env("MIX_BUILD_PATH"),
      do: Mix.Project.build_path(),
      else: Path.dirname(Mix.Project.build_path())
  end

  defp app_priv, do: Path.join(Mix.Project.app_path(), "priv")

  # The cargo target triple, or nil for the host (Target.rust_triple/2).
  defp triple do
    case Target.rust_triple(System.get_env(), Mix.target()) do
      {:ok, triple} -> triple
      {:error, message} -> Mix.raise(message)
    end
  end

  # The NIF gets its own profile (panic = "unwind"), hence two cargo runs,
  # side by side (Cargo.run/3).
  defp cargo_runs do
    port = ["muontrap_port"] ++ if(Mix.env() == :test, do: ["muontrap_test_helper"], else: [])
    [{"release", port}, {"release-nif", ["muontrap_nif"]}]
  end

  defp artifacts(target_dir, triple) do
    dir = fn profile -> Path.join([target_dir | List.wrap(triple)] ++ [profile]) end
    priv = app_priv()

    base = [
      {Path.join(dir.("release"), "muontrap"), Path.join(priv, "muontrap")},
      {Path.join(dir.("release-nif"), Target.nif_artifact(triple, :os.type())),
       Path.join(priv, "libmuontrap_nif.so")}
    ]

    if Mix.env() == :test do
      helper =
        Path.join([Mix.Project.build_path(), "muontrap_test_helper", "muontrap_test_helper"])

      [{Path.join(dir.("release"), "muontrap_test_helper"), helper} | base]
    else
      base
    end
  end

  defp inputs do
    [Path.join(@root, "Cargo.toml"), Path.join(@root, "Cargo.lock")] ++
      Path.wildcard(Path.join(@root, ".cargo/config{,.toml}")) ++
      Path.wildcard(Path.join(@root, "native/**/*.{rs,toml}"))
  end

  # Everything that changes the artifacts, compared with the stamp written by
  # the last build; the source files are compared with its start time.
  defp keys(toolchain) do
    %{
      version: @stamp_version,
      mix_env: Mix.env(),
      mix_target: Mix.target(),
      triple: triple(),
      runs: cargo_runs(),
      cargo: Toolchain.cargo(System.get_env()),
      toolchain: toolchain,
      env:
        Enum.sort(
          for {name, value} <- System.get_env(),
              name in @env_keys or
                (String.starts_with?(name, ["CARGO_TARGET_", "CARGO_PROFILE_"]) and
                   name != "CARGO_TARGET_DIR"),
              do: {name, value}
        )
    }
  end

  defp stale?(nil, _keys), do: true

  defp stale?(stamp, keys) do
    stamp.keys != keys or
      match?({:ok, _}, File.lstat(Path.join(@root, "priv"))) or
      not match?({:ok, %{type: :directory}}, File.lstat(app_priv())) or
      not Enum.all?(artifacts(target_dir(), keys.triple), fn {_, dest} -> File.regular?(dest) end) or
      Enum.any?(inputs(), &(mtime(&1) >= stamp.built_at))
  end

  defp mtime(path) do
    case File.stat(path, time: :posix) do
      {:ok, stat} -> stat.mtime
      {:error, _} -> 0
    end
  end

  # `rustc -vV` (version, commit, host, LLVM) of the rustc cargo will use. It
  # costs 20-90 ms through rustup's proxy, so it is asked again only when a
  # file that decides which rustc runs has changed (`facts`: the cargo and
  # rustc found in PATH, rustup's settings and toolchains, rust-toolchain
  # files), not on every no-op `mix compile`.
  defp toolchain(stamp) do
    rustc = Toolchain.rustc(System.get_env())
    rustup_home = System.get_env("RUSTUP_HOME") || Path.expand("~/.rustup")

    files =
      [Toolchain.cargo(System.get_env()), rustc, Path.join(rustup_home, "settings.toml")] ++
        Path.wildcard(Path.join(rustup_home, "toolchains/*/bin/rustc")) ++
        toolchain_files(@root)

    facts = {rustc, Enum.map(files, &{&1, file_fact(&1)})}

    case stamp do
      %{facts: ^facts, keys: %{toolchain: toolchain}} -> {facts, toolchain}
      _ -> {facts, rustc_version(rustc)}
    end
  end

  defp toolchain_files(dir) do
    files = [Path.join(dir, "rust-toolchain"), Path.join(dir, "rust-toolchain.toml")]
    parent = Path.dirname(dir)
    if parent == dir, do: files, else: files ++ toolchain_files(parent)
  end

  defp file_fact(nil), do: nil

  defp file_fact(path) do
    case File.stat(path, time: :posix) do
      {:ok, stat} -> {stat.mtime, stat.size}
      {:error, _} -> nil
    end
  end

  defp rustc_version(nil), do: nil

  defp rustc_version(rustc) do
    case System.cmd(rustc, ["-vV"], cd: @root, stderr_to_stdout: true) do
      {version, 0} -> version
      _ -> nil
    end
  rescue
    _ in ErlangError -> nil
  end

  defp stamp_path, do: Path.join(Mix.Project.manifest_path(), @manifest)

  defp read_stamp do
    with {:ok, binary} <- File.read(stamp_path()),
         %{keys: %{version: @stamp_version}} = stamp <- :erlang.binary_to_term(binary) do
      stamp
    else
      _ -> nil
    end
  rescue
    ArgumentError -> nil
  end

  defp write_stamp(stamp) do
    File.mkdir_p!(Path.dirname(stamp_path()))
    File.write!(stamp_path(), :erlang.term_to_binary(stamp))
  end

  defp build(keys, facts) do
    env = System.get_env()
    cargo = keys.cargo
    triple = keys.triple
    host = host_triple(keys.toolchain)

    unless cargo && File.regular?(cargo) do
      Mix.raise(Toolchain.no_cargo_message(env, cargo))
    end

    if triple not in [nil, host] do
      with {:error, message} <- Toolchain.check_std(Toolchain.rustc(env), triple, @root) do
        Mix.raise(message)
      end
    end

    if message = Toolchain.missing_linker(env, triple, host, @root), do: Mix.raise(message)

    if Mix.target() != :host and triple == nil do
      Mix.shell().info(
        "muontrap: MIX_TARGET=#{Mix.target()} but neither MUONTRAP_CARGO_TARGET, " <>
          "CARGO_BUILD_TARGET nor Nerves' TARGET_ARCH or CROSSCOMPILE is set: building for the host"
      )
    end

    Mix.shell().info(
      "Compiling Rust workspace (cargo build#{if triple, do: " --target #{triple}"})"
    )

    # Files changed from now on are newer than the build.
    built_at = System.os_time(:second)

    case run_cargo(cargo, triple, cargo_env(env, triple, host)) do
      0 ->
        install(artifacts(target_dir(), triple))
        write_stamp(%{keys: keys, facts: facts, built_at: built_at})
        :ok

      status ->
        cargo_failed(status, triple)
    end
  end

  defp run_cargo(cargo, triple, env) do
    runs =
      for {profile, packages} <- cargo_runs() do
        args =
          ["build", "--profile=#{profile}"] ++
            color(System.get_env()) ++
            if(triple, do: ["--target", triple], else: []) ++
            Enum.flat_map(packages, &["-p", &1]) ++
            Target.feature_args(System.get_env(), packages)

        run_env =
          if profile == "release-nif",
            do: env ++ Target.nif_rustflags(System.get_env(), triple),
            else: env

        {args, run_env}
      end

    Cargo.run(cargo, @root, runs)
  end

  # Cargo colours only a terminal, and its output comes through a pipe: as
  # Mix does, unless the user chose with CARGO_TERM_COLOR.
  defp color(env) do
    cond do
      Target.present(env, "CARGO_TERM_COLOR") -> []
      IO.ANSI.enabled?() -> ["--color=always"]
      true -> ["--color=never"]
    end
  end

  # What cargo needs beyond the user's environment: the shared target dir,
  # the cross linker (Target.linker/3) and the rustc that belongs to CARGO.
  defp cargo_env(env, triple, host) do
    linker = Target.linker(env, triple, host)
    rustc = Toolchain.rustc_override(env)

    [{"CARGO_TARGET_DIR", target_dir()}] ++
      if(linker, do: [{Target.linker_var(triple), linker}], else: []) ++
      if(rustc, do: [{"RUSTC", rustc}], else: [])
  end

  defp host_triple(toolchain) when is_binary(toolchain) do
    case Regex.run(~r/^host: (\S+)$/m, toolchain) do
      [_, host] -> host
      nil -> nil
    end
  end

  defp host_triple(_toolchain), do: nil

  defp cargo_failed(status, triple) do
    target = if triple, do: " --target #{triple}", else: ""

    diagnostic = %Mix.Task.Compiler.Diagnostic{
      compiler_name: "muontrap_native",
      file: Path.join(@root, "Cargo.toml"),
      message: "cargo build#{target} failed with status #{status} (its output is above)",
      position: nil,
      severity: :error
    }

    Mix.shell().error(diagnostic.message)
    {:error, [diagnostic]}
  end

  defp install(artifacts) do
    prepare_priv()

    for {src, dest} <- artifacts do
      File.mkdir_p!(Path.dirname(dest))

      # Copy to a temporary name and rename, so a running port binary is never overwritten in place.
      tmp = dest <> ".tmp"
      File.cp!(src, tmp)
      File.rename!(tmp, dest)
    end
  end

  # Mix links _build/ENV/lib/muontrap/priv to the source tree's priv/ when
  # there is one (and copies it there with build_embedded), so there must be
  # none. An older version of this compiler installed into it: remove those
  # leftovers, and the link to them.
  defp prepare_priv do
    source = Path.join(@root, "priv")

    case File.ls(source) do
      {:ok, files} ->
        unless Enum.all?(files, &(&1 in @old_priv_files)) do
          Mix.raise(
            "#{source} holds files muontrap does not build; Mix would link it in place of " <>
              "the artifacts' directory #{app_priv()}: move it away"
          )
        end

        Mix.shell().info("Removing priv/ left in the source tree by an older muontrap build")
        Enum.each(files, &File.rm!(Path.join(source, &1)))
        File.rmdir!(source)

      {:error, _} ->
        :ok
    end

    priv = app_priv()
    if match?({:ok, %{type: :symlink}}, File.lstat(priv)), do: File.rm!(priv)
    File.mkdir_p!(priv)
  end
end
