defmodule MuonTrap.Build.PackageTest do
  # The package's `files:` (mix.exs) hold what a user building from it
  # needs: a tree made of exactly those files, as Hex expands them, builds
  # and runs as a dependency. Not async: the build takes both cores.
  use ExUnit.Case, async: false

  alias MuonTrap.Test.DependentApp

  # The tree lives at a fixed place (under _build) and keeps the sources'
  # mtimes, so cargo rebuilds its crates only when the Rust code changed;
  # a cold build of them takes a few minutes on two cores.
  @moduletag timeout: 900_000

  @root Path.expand("../..", __DIR__)

  # As Hex does: each entry is a path or a wildcard; a directory brings
  # every file beneath it.
  defp package_files do
    Mix.Project.config()[:package][:files]
    |> Enum.flat_map(&Path.wildcard(Path.join(@root, &1), match_dot: true))
    |> Enum.flat_map(fn path ->
      if File.dir?(path),
        do: Path.wildcard(Path.join(path, "**"), match_dot: true),
        else: [path]
    end)
    |> Enum.filter(&File.regular?/1)
    |> Enum.map(&Path.relative_to(&1, @root))
    |> Enum.uniq()
    |> Enum.sort()
  end

  test "the package ships the sources, never priv/, a target dir or build output" do
    files = package_files()

    for needed <- ~w(mix.exs Cargo.toml Cargo.lock README.md LICENSE CHANGELOG.md
                     mix/compile.muontrap_native.exs lib/muontrap.ex
                     native/muontrap_port/build.rs native/muontrap_nif/Cargo.toml) do
      assert needed in files
    end

    for file <- files do
      refute file =~ ~r{(^|/)(priv|target|_build|deps)/}, file
      refute String.ends_with?(file, [".so", ".beam", ".tmp"]), file
    end
  end

  test "a tree of exactly the package's files builds and runs as a dependency" do
    tree = Path.join([@root, "_build", "package_tree", "muontrap"])
    copy_tree(package_files(), tree)
    lock_mtime = File.stat!(Path.join(tree, "Cargo.lock"), time: :posix).mtime

    dir = Path.join(System.tmp_dir!(), "muontrap_package_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    File.write!(Path.join(dir, "mix.exs"), """
    defmodule FromPackage.MixProject do
      use Mix.Project

      def project do
        [app: :from_package, version: "0.1.0", deps: [{:muontrap, path: #{inspect(tree)}}]]
      end
    end
    """)

    script = ~S|IO.puts("RESULT " <> inspect(MuonTrap.cmd("echo", ["hi"])))|

    {output, status} = DependentApp.mix_run(dir, script)

    assert status == 0, output
    assert output =~ ~s(RESULT {"hi\\n", 0}), output
    # Cargo's own status lines come through (a first build takes a while
    # and must not look hung): the port's run, then the NIF's.
    assert output =~ ~r/^ +Finished `release` profile.*^ +Finished `release-nif` profile/ms,
           output

    # Cargo found the lock file complete: it did not rewrite it.
    assert File.stat!(Path.join(tree, "Cargo.lock"), time: :posix).mtime == lock_mtime
    refute File.exists?(Path.join(tree, "priv"))
  end

  # The tree holds exactly `files`, each with its source's mtime.
  defp copy_tree(files, tree) do
    File.rm_rf!(tree)

    for file <- files do
      src = Path.join(@root, file)
      dest = Path.join(tree, file)
      File.mkdir_p!(Path.dirname(dest))
      File.cp!(src, dest)
      %{mtime: mtime, mode: mode} = File.stat!(src, time: :posix)
      File.chmod!(dest, mode)
      File.touch!(dest, mtime)
    end
  end
end
