defmodule MuonTrap.ReadmeVersionTest do
  # The README's dependency line follows the version in mix.exs, and a
  # MuonTrap 2.0 user's requirement accepts it.
  use ExUnit.Case, async: true

  @readme Path.expand("../../README.md", __DIR__)

  test "the README's dependency line matches mix.exs" do
    version = Mix.Project.config()[:version]

    [requirement] =
      Regex.run(~r/\{:muontrap, "(~> [0-9.]+)"\}/, File.read!(@readme), capture: :all_but_first)

    %Version{major: major, minor: minor} = Version.parse!(version)
    assert requirement == "~> #{major}.#{minor}"
    assert Version.match?(version, requirement)
    assert Version.match?(version, "~> 2.0")
  end
end
