defmodule MuonTrap.Build.ToolchainTest do
  # Which cargo and rustc `mix compile` runs, and the one message it gives
  # when something is missing (mix/muontrap_native/toolchain.exs). A fake
  # rustc stands in for a toolchain without the target's standard library.
  use ExUnit.Case, async: true

  alias Mix.Tasks.Compile.MuontrapNative.Toolchain

  @root Path.expand("../..", __DIR__)

  setup do
    dir = Path.join(System.tmp_dir!(), "muontrap_toolchain_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  # A rustc that answers `-vV` and `--print sysroot --print target-libdir`
  # (status 1 for an unknown target), with `sysroot` and `libdir` as given.
  defp fake_rustc(dir, sysroot, libdir, known \\ true) do
    rustc = Path.join(dir, "rustc")

    File.write!(rustc, """
    #!/bin/sh
    case "$1" in
      -vV) printf 'rustc 1.0.0\\nhost: x86_64-unknown-linux-gnu\\n' ;;
      *) #{if known, do: "printf '%s\\n%s\\n' '#{sysroot}' '#{libdir}'", else: "echo 'error: Error loading target specification' >&2; exit 1"} ;;
    esac
    """)

    File.chmod!(rustc, 0o755)
    rustc
  end

  describe "cargo/1 and rustc_override/1" do
    test "CARGO is a path or a name in PATH; else cargo from PATH" do
      assert Toolchain.cargo(%{"CARGO" => "/opt/rust/bin/cargo"}) == "/opt/rust/bin/cargo"
      assert Toolchain.cargo(%{"CARGO" => "sh"}) == System.find_executable("sh")
      assert Toolchain.cargo(%{"CARGO" => "no-such-cargo-here"}) == nil
      assert Toolchain.cargo(%{}) == System.find_executable("cargo")
    end

    test "RUSTC wins; else the rustc beside a CARGO path, if there is one", %{dir: dir} do
      File.touch!(Path.join(dir, "rustc"))
      cargo = Path.join(dir, "cargo")
      assert Toolchain.rustc_override(%{"CARGO" => cargo}) == Path.join(dir, "rustc")
      assert Toolchain.rustc_override(%{"CARGO" => cargo, "RUSTC" => "/x/rustc"}) == "/x/rustc"
      assert Toolchain.rustc_override(%{"CARGO" => "/nowhere/cargo"}) == nil
      assert Toolchain.rustc_override(%{"CARGO" => "cargo"}) == nil
      assert Toolchain.rustc_override(%{}) == nil
    end

    test "the missing cargo message says how to get one" do
      assert Toolchain.no_cargo_message(%{}, nil) =~
               ~r/cargo was not found in PATH.*rustup.*apt-get install rustc-web cargo-web.*set CARGO/

      assert Toolchain.no_cargo_message(%{"CARGO" => "/x/cargo"}, "/x/cargo") =~
               "CARGO=/x/cargo is not an executable"
    end
  end

  describe "check_std/3" do
    test "ok when the target's libdir has core", %{dir: dir} do
      libdir = Path.join(dir, "lib/rustlib/aarch64-unknown-linux-gnu/lib")
      File.mkdir_p!(libdir)
      File.touch!(Path.join(libdir, "libcore-0123abcd.rlib"))
      rustc = fake_rustc(dir, dir, libdir)
      assert Toolchain.check_std(rustc, "aarch64-unknown-linux-gnu", @root) == :ok
    end

    test "a rustup toolchain without it: rustup target add", %{dir: dir} do
      sysroot = Path.join(dir, "toolchains/stable-x86_64-unknown-linux-gnu")
      rustc = fake_rustc(dir, sysroot, Path.join(sysroot, "lib/rustlib/x/lib"))
      assert {:error, message} = Toolchain.check_std(rustc, "aarch64-unknown-linux-gnu", @root)
      assert message =~ "the Rust standard library for aarch64-unknown-linux-gnu is not installed"

      if System.find_executable("rustup") do
        assert message =~
                 "`rustup target add --toolchain stable-x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu`"
      end
    end

    test "another toolchain: where the library belongs", %{dir: dir} do
      rustc = fake_rustc(dir, "/opt/rust", "/opt/rust/lib/rustlib/x/lib")
      assert {:error, message} = Toolchain.check_std(rustc, "riscv64gc-unknown-linux-gnu", @root)
      assert message =~ "install it into /opt/rust/lib/rustlib/riscv64gc-unknown-linux-gnu"
    end

    test "a target rustc does not know", %{dir: dir} do
      rustc = fake_rustc(dir, "", "", false)
      assert {:error, message} = Toolchain.check_std(rustc, "aarch64-unknown-linux-gnux", @root)
      assert message =~ "does not know the Rust target aarch64-unknown-linux-gnux"
      assert message =~ "rustc --print target-list"
    end

    # Debian's own rustc-web (installed by .ci/run's cross step): the
    # package must be of exactly the compiler's version.
    with "/usr/bin/rustc" <- System.find_executable("/usr/bin/rustc"),
         dpkg when is_binary(dpkg) <- System.find_executable("dpkg-query"),
         {"rustc-web: /usr/bin/rustc\n", 0} <- System.cmd(dpkg, ["-S", "/usr/bin/rustc"]),
         {version, 0} <- System.cmd(dpkg, ["-W", "-f", "${Version}", "rustc-web"]) do
      @version version

      test "Debian's rustc-web: the libstd package of its exact version" do
        assert {:error, message} =
                 Toolchain.check_std("/usr/bin/rustc", "s390x-unknown-linux-gnu", @root)

        assert message =~
                 "`dpkg --add-architecture s390x && apt-get update && " <>
                   "apt-get install libstd-rust-web-dev:s390x=#{@version}`"

        assert {:error, message} =
                 Toolchain.check_std("/usr/bin/rustc", "arm-unknown-linux-gnueabihf", @root)

        assert message =~ "Debian has no libstd-rust-web-dev for arm-unknown-linux-gnueabihf"
        assert message =~ "rustup target add arm-unknown-linux-gnueabihf"
      end
    end
  end

  describe "mix compile.muontrap_native" do
    # Each fails before cargo runs, so nothing is built or installed.
    defp compile(env) do
      env = [{"MIX_ENV", "test"}, {"MIX_TARGET", nil} | env]
      System.cmd("mix", ["compile.muontrap_native"], cd: @root, env: env, stderr_to_stdout: true)
    end

    defp one_message!(output) do
      assert [line] = String.split(String.trim(output), "\n"), output
      refute line =~ "Compiling", output
      line
    end

    test "a target without its standard library: one message naming it", %{dir: dir} do
      rustc = fake_rustc(dir, "/opt/rust", "/opt/rust/lib/rustlib/x/lib")
      env = [{"MUONTRAP_CARGO_TARGET", "aarch64-unknown-linux-gnu"}, {"RUSTC", rustc}]
      {output, status} = compile(env)
      assert status != 0
      assert one_message!(output) =~ "standard library for aarch64-unknown-linux-gnu"
    end

    test "a board the mapping does not know", %{dir: dir} do
      env = [{"MIX_TARGET", "myboard"}, {"TARGET_ARCH", "mipsel"}, {"TARGET_OS", "linux"}]
      {output, status} = compile([{"MIX_BUILD_PATH", Path.join(dir, "build")} | env])
      assert status != 0
      assert one_message!(output) =~ "no Rust target is known for MIX_TARGET=myboard"
    end

    test "no cargo" do
      {output, status} = compile([{"CARGO", "/nonexistent/cargo"}])
      assert status != 0
      assert one_message!(output) =~ "CARGO=/nonexistent/cargo is not an executable"
    end
  end
end
