# The mix compiler that builds the Rust workspace (see the files).
for file <- ~w(target toolchain),
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
