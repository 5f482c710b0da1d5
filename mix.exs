# The mix compiler that builds the Rust workspace (see the files).
for file <- ~w(target toolchain cargo),
    do: Code.require_file("mix/muontrap_native/#{file}.exs", __DIR__)

Code.require_file("mix/compile.muontrap_native.exs", __DIR__)

defmodule MuonTrap.MixProject do
  use Mix.Project

  @version "2.1.0"

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
      description:
        "Keep programs, daemons and applications launched from Erlang and Elixir " <>
          "contained and well-behaved (MuonTrap 2.0's API, in Rust)",
      package: package(),
      docs: [main: "readme", extras: ["README.md"]],
      dialyzer: [plt_add_apps: [:mix]]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {MuonTrap.Application, []}]
  end

  # bench/lib holds `mix muontrap.bench`, for this repository only: a
  # dependency is compiled in :prod, so it never reaches a user's app.
  defp elixirc_paths(:test), do: ["lib", "bench/lib", "test/support"]
  defp elixirc_paths(:dev), do: ["lib", "bench/lib"]
  defp elixirc_paths(_), do: ["lib"]

  # What a user building from the package needs (test/build/package_test.exs
  # builds a tree of exactly these): the Rust sources without any target dir,
  # the mix compiler and docs/ (MuonTrap.Daemon's moduledoc), never priv/
  # (built for the user's own target).
  defp package do
    [
      licenses: ["Apache-2.0"],
      links: %{"MuonTrap 2.0 (C), the original" => "https://github.com/fhunleth/muontrap"},
      files:
        ~w(lib mix native/*/Cargo.toml native/*/build.rs native/*/src native/*/tests docs) ++
          ~w(Cargo.toml Cargo.lock mix.exs README.md LICENSE CHANGELOG.md)
    ]
  end

  defp aliases do
    [demo: ["run demo/contained.exs"]]
  end
end
