defmodule Mix.Tasks.Compile.MuontrapNative do
  @moduledoc false
  # Builds the Rust workspace (port binary, NIF and, in the test env, the test
  # helper) and installs the artifacts. Defined here because no hex package
  # (rustler's mix task, elixir_make) can be fetched.
  use Mix.Task.Compiler

  @root __DIR__

  @impl true
  def run(_args) do
    priv = Path.join(@root, "priv")
    outputs = Enum.map(artifacts(), fn {_src, dest} -> dest end)

    if Mix.Utils.stale?(inputs(), outputs) do
      build(priv)
    else
      :noop
    end
  end

  defp artifacts do
    release = Path.join([@root, "target", "release"])
    priv = Path.join(@root, "priv")

    base = [
      {Path.join(release, "muontrap"), Path.join(priv, "muontrap")},
      {Path.join([@root, "target", "release-nif", "libmuontrap_nif.so"]),
       Path.join(priv, "libmuontrap_nif.so")}
    ]

    if Mix.env() == :test do
      helper =
        Path.join([Mix.Project.build_path(), "muontrap_test_helper", "muontrap_test_helper"])

      [{Path.join(release, "muontrap_test_helper"), helper} | base]
    else
      base
    end
  end

  # The NIF gets its own profile (panic = "unwind"), hence two cargo runs.
  defp cargo_runs do
    port = ["muontrap_port"] ++ if(Mix.env() == :test, do: ["muontrap_test_helper"], else: [])
    [{"--release", port}, {"--profile=release-nif", ["muontrap_nif"]}]
  end

  defp inputs do
    [Path.join(@root, "Cargo.toml"), Path.join(@root, "Cargo.lock")] ++
      Path.wildcard(Path.join(@root, "native/**/*.{rs,toml}"))
  end

  defp build(priv) do
    Mix.shell().info("Compiling Rust workspace (cargo build)")

    status =
      Enum.reduce_while(cargo_runs(), 0, fn {profile, packages}, 0 ->
        args = ["build", "--quiet", profile] ++ Enum.flat_map(packages, &["-p", &1])
        opts = [cd: @root, stderr_to_stdout: true, into: IO.stream(:stdio, :line)]

        case System.cmd("cargo", args, opts) do
          {_, 0} -> {:cont, 0}
          {_, status} -> {:halt, status}
        end
      end)

    case status do
      0 ->
        File.mkdir_p!(priv)

        for {src, dest} <- artifacts() do
          File.mkdir_p!(Path.dirname(dest))

          # Copy to a temporary name and rename, so a running port binary is never overwritten in place.
          tmp = dest <> ".tmp"
          File.cp!(src, tmp)
          File.rename!(tmp, dest)
        end

        # priv/ may not have existed when Mix linked the app's build dir.
        Mix.Project.build_structure()
        :ok

      status ->
        diagnostic = %Mix.Task.Compiler.Diagnostic{
          compiler_name: "muontrap_native",
          file: Path.join(@root, "Cargo.toml"),
          message: "cargo build failed with status #{status}",
          position: nil,
          severity: :error
        }

        Mix.shell().error(diagnostic.message)
        {:error, [diagnostic]}
    end
  end
end

defmodule MuonTrap.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :muontrap,
      version: @version,
      elixir: "~> 1.14",
      compilers: [:muontrap_native | Mix.compilers()],
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      aliases: aliases(),
      docs: [main: "readme", extras: ["README.md"]],
      dialyzer: [plt_add_apps: [:mix]]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  defp aliases do
    [demo: ["run demo/contained.exs"]]
  end
end
