defmodule MuonTrap.Build.AsDependencyTest do
  # A fresh project that depends on this one through `path:`, built and run
  # the way a user (or Nerves) would: `mix compile` builds the Rust code into
  # that project's _build, nothing lands in this source tree.
  # Not async: the build takes both cores for a few seconds, and other
  # tests measure timing.
  use ExUnit.Case, async: false

  alias MuonTrap.Test.DependentApp

  # The dependency's cargo build reuses this project's cargo target dir, so
  # it is a no-op unless the Rust code changed since `mix test` built it; a
  # cold build takes a few minutes on two cores.
  @moduletag timeout: 900_000

  @root Path.expand("../..", __DIR__)

  setup do
    dir = Path.join(System.tmp_dir!(), "muontrap_as_dep_#{System.unique_integer([:positive])}")
    File.mkdir_p!(Path.join(dir, "lib"))
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  test "a project with muontrap as a path dependency builds and runs MuonTrap.cmd/3", %{dir: dir} do
    File.write!(Path.join(dir, "mix.exs"), """
    defmodule AsDep.MixProject do
      use Mix.Project

      def project do
        [app: :as_dep, version: "0.1.0", deps: [{:muontrap, path: #{inspect(@root)}}]]
      end
    end
    """)

    source_before = source_tree_state()

    script = """
    IO.puts("PRIV " <> to_string(:code.priv_dir(:muontrap)))
    IO.puts("RESULT " <> inspect(MuonTrap.cmd("echo", ["hi"])))
    tasks = [Mix.Tasks.Muontrap.Doctor, Mix.Tasks.Muontrap.Bench]
    IO.puts("TASKS " <> inspect(Enum.map(tasks, &Code.ensure_loaded?/1)))
    """

    {output, status} = DependentApp.mix_run(dir, script)

    assert status == 0, output
    assert output =~ ~s(RESULT {"hi\\n", 0}), output
    # mix muontrap.doctor is for users; the benchmark (bench/lib) is not shipped.
    assert output =~ "TASKS [true, false]\n", output

    # The artifacts are in the fresh project's build dir, a real directory
    # (not a link into our source tree), where :code.priv_dir/1 finds them.
    priv = Path.join(dir, "_build/dev/lib/muontrap/priv")
    assert output =~ "PRIV #{priv}\n", output
    assert {:ok, %{type: :directory}} = File.lstat(priv)
    assert File.regular?(Path.join(priv, "muontrap"))
    assert File.regular?(Path.join(priv, "libmuontrap_nif.so"))
    refute File.exists?(Path.join(dir, "_build/cargo"))

    assert source_tree_state() == source_before
    refute File.exists?(Path.join(@root, "priv"))
  end

  # What a build could write into our source tree: priv/ (which Mix would
  # link the build's priv/ to), cargo's default target/, Cargo.lock.
  defp source_tree_state do
    %{
      priv: File.exists?(Path.join(@root, "priv")),
      target: File.exists?(Path.join(@root, "target")),
      lock: File.stat!(Path.join(@root, "Cargo.lock"), time: :posix).mtime,
      top: Enum.sort(File.ls!(@root)) -- ["_build", "deps", "tmp"]
    }
  end
end
