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

  describe "missing_linker/4" do
    @host "x86_64-unknown-linux-gnu"
    @host_var "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"
    @arm "aarch64-unknown-linux-gnu"

    # No cargo config of the user's (CARGO_HOME) may decide.
    defp linker_env(dir, env), do: Map.merge(%{"CARGO_HOME" => dir}, env)

    test "cc, or the host's linker variable, must be found", %{dir: dir} do
      if System.find_executable("cc") do
        assert Toolchain.missing_linker(linker_env(dir, %{}), nil, @host, dir) == nil
      end

      env = linker_env(dir, %{@host_var => "/nonexistent/ld"})
      message = Toolchain.missing_linker(env, nil, @host, dir)
      assert message =~ "the linker for #{@host}, `/nonexistent/ld` (from #{@host_var})"
      assert Toolchain.missing_linker(env, @host, @host, dir) == message
    end

    test "a cross build's linker: CC, $CROSSCOMPILE-gcc or its variable", %{dir: dir} do
      sh = System.find_executable("sh")

      for {env, from} <- [
            {%{"CC" => "/nonexistent/aarch64-linux-gnu-gcc"}, "(from CC)"},
            {%{"CROSSCOMPILE" => "/nonexistent/aarch64-linux-gnu"}, "(from CROSSCOMPILE"},
            {%{"CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER" => "no-such-gcc"},
             "(from CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER)"}
          ] do
        env = linker_env(dir, Map.put(env, @host_var, sh))
        message = Toolchain.missing_linker(env, @arm, @host, dir)
        assert message =~ "the linker for #{@arm}, `", inspect(env)
        assert message =~ from
        assert message =~ "set CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"
      end

      env = linker_env(dir, %{@host_var => sh, "CC" => sh})
      assert Toolchain.missing_linker(env, @arm, @host, dir) == nil
    end

    test "nil when a cargo config or RUSTFLAGS may name the linker", %{dir: dir} do
      env = linker_env(dir, %{@host_var => "/nonexistent/ld"})
      assert Toolchain.missing_linker(env, nil, @host, dir) =~ "/nonexistent/ld"

      rustflags = Map.put(env, "RUSTFLAGS", "-C linker=clang")
      assert Toolchain.missing_linker(rustflags, nil, @host, dir) == nil

      root = Path.join(dir, "app/deps/muontrap")
      File.mkdir_p!(Path.join(dir, "app/.cargo"))
      File.mkdir_p!(root)
      assert Toolchain.missing_linker(env, nil, @host, root) =~ "/nonexistent/ld"

      File.write!(Path.join(dir, "app/.cargo/config.toml"), """
      [target.#{@host}]
      linker = "clang"
      """)

      assert Toolchain.missing_linker(env, nil, @host, root) == nil
    end

    test "the message for a missing cc says how to install one" do
      message = Toolchain.no_linker_message("cc", :default, @host)
      assert message =~ "the C compiler `cc` was not found in PATH"

      assert Toolchain.c_compiler_hint({:unix, :linux}) =~
               "`apt-get install gcc` (or `build-essential`)"

      assert Toolchain.c_compiler_hint({:unix, :darwin}) =~ "`xcode-select --install`"
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

    # PATH without cc: a directory of links to everything else in PATH.
    test "no cc: one message saying how to install it, before cargo runs", %{dir: dir} do
      bin = Path.join(dir, "bin")
      File.mkdir_p!(bin)

      for path_dir <- String.split(System.get_env("PATH"), ":", trim: true),
          {:ok, names} <- [File.ls(path_dir)],
          name <- names -- ["cc"],
          not File.exists?(Path.join(bin, name)) do
        File.ln_s(Path.join(path_dir, name), Path.join(bin, name))
      end

      env = [
        {"PATH", bin},
        {"MIX_BUILD_PATH", Path.join(dir, "build")},
        {"CARGO_TARGET_DIR", nil}
      ]

      {output, status} = compile(env)
      assert status != 0
      assert one_message!(output) =~ "the C compiler `cc` was not found in PATH"
      assert output =~ "apt-get install gcc"
      refute File.exists?(Path.join(dir, "build/cargo"))
    end

    test "a cross build's linker missing: one message naming it", %{dir: dir} do
      libdir = Path.join(dir, "lib/rustlib/aarch64-unknown-linux-gnu/lib")
      File.mkdir_p!(libdir)
      File.touch!(Path.join(libdir, "libcore-0123abcd.rlib"))

      env = [
        {"MUONTRAP_CARGO_TARGET", "aarch64-unknown-linux-gnu"},
        {"RUSTC", fake_rustc(dir, dir, libdir)},
        {"CC", "/nonexistent/aarch64-linux-gnu-gcc"},
        {"MIX_BUILD_PATH", Path.join(dir, "build")}
      ]

      {output, status} = compile(env)
      assert status != 0
      assert one_message!(output) =~ "`/nonexistent/aarch64-linux-gnu-gcc` (from CC)"
    end

    test "no cargo" do
      {output, status} = compile([{"CARGO", "/nonexistent/cargo"}])
      assert status != 0
      assert one_message!(output) =~ "CARGO=/nonexistent/cargo is not an executable"
    end
  end
end
