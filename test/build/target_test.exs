defmodule MuonTrap.Build.TargetTest do
  # The Rust target and linker that `mix compile` picks from the
  # environment Nerves exports (mix/muontrap_native/target.exs): pure
  # functions of an environment map, no toolchain needed.
  use ExUnit.Case, async: true

  alias Mix.Tasks.Compile.MuontrapNative.Target

  defp nerves(arch, abi, cpu, extra \\ %{}) do
    Map.merge(
      %{"TARGET_ARCH" => arch, "TARGET_OS" => "linux", "TARGET_ABI" => abi, "TARGET_CPU" => cpu},
      extra
    )
  end

  describe "rust_triple/2 for Nerves' boards" do
    test "aarch64 (rpi4, rpi5, ...), gnu and musl" do
      assert Target.rust_triple(nerves("aarch64", "gnu", "cortex_a72"), :rpi4) ==
               {:ok, "aarch64-unknown-linux-gnu"}

      assert Target.rust_triple(nerves("aarch64", "musl", "cortex_a53"), :custom) ==
               {:ok, "aarch64-unknown-linux-musl"}
    end

    test "32-bit ARMv7 boards (rpi2, rpi3, bbb): any Cortex-A CPU" do
      for cpu <- ~w(cortex_a7 cortex_a8 cortex_a53 cortex-a9) do
        assert Target.rust_triple(nerves("arm", "gnueabihf", cpu), :rpi3) ==
                 {:ok, "armv7-unknown-linux-gnueabihf"}
      end

      assert Target.rust_triple(nerves("arm", "musleabihf", "cortex_a7"), :custom) ==
               {:ok, "armv7-unknown-linux-musleabihf"}

      assert Target.rust_triple(nerves("arm", "gnueabi", "cortex_a8"), :custom) ==
               {:ok, "armv7-unknown-linux-gnueabi"}
    end

    test "ARMv6 (rpi0, rpi): arm-unknown-linux-gnueabihf" do
      assert Target.rust_triple(nerves("arm", "gnueabihf", "arm1176jzf_s"), :rpi0) ==
               {:ok, "arm-unknown-linux-gnueabihf"}

      assert Target.rust_triple(nerves("arm", "musleabihf", "arm1176jzf-s"), :custom) ==
               {:ok, "arm-unknown-linux-musleabihf"}
    end

    test "ARMv5 (arm926) is soft-float only" do
      assert Target.rust_triple(nerves("arm", "gnueabi", "arm926ej_s"), :custom) ==
               {:ok, "armv5te-unknown-linux-gnueabi"}

      assert {:error, _} = Target.rust_triple(nerves("arm", "gnueabihf", "arm926ej_s"), :custom)
    end

    test "x86_64 (Nerves' x86_64 system is musl) and riscv64" do
      assert Target.rust_triple(nerves("x86_64", "musl", "x86_64"), :x86_64) ==
               {:ok, "x86_64-unknown-linux-musl"}

      assert Target.rust_triple(nerves("x86_64", "gnu", ""), :custom) ==
               {:ok, "x86_64-unknown-linux-gnu"}

      assert Target.rust_triple(nerves("riscv64", "gnu", "sifive_u74"), :mangopi_mq_pro) ==
               {:ok, "riscv64gc-unknown-linux-gnu"}

      assert Target.rust_triple(nerves("riscv64", "musl", nil), :custom) ==
               {:ok, "riscv64gc-unknown-linux-musl"}
    end
  end

  describe "rust_triple/2 from the toolchain prefix" do
    test "when TARGET_* are not set, CROSSCOMPILE's last part says" do
      for {prefix, triple} <- [
            {"aarch64-nerves-linux-gnu", "aarch64-unknown-linux-gnu"},
            {"armv7-nerves-linux-gnueabihf", "armv7-unknown-linux-gnueabihf"},
            {"armv6-nerves-linux-gnueabihf", "arm-unknown-linux-gnueabihf"},
            {"x86_64-nerves-linux-musl", "x86_64-unknown-linux-musl"},
            {"riscv64-nerves-linux-gnu", "riscv64gc-unknown-linux-gnu"},
            {"aarch64-linux-gnu", "aarch64-unknown-linux-gnu"}
          ] do
        env = %{"CROSSCOMPILE" => "/root/.nerves/artifacts/tc/bin/" <> prefix}
        assert Target.rust_triple(env, :board) == {:ok, triple}, prefix
      end
    end

    test "else CC without -gcc" do
      env = %{"CC" => "/opt/tc/bin/armv7-nerves-linux-gnueabihf-gcc"}
      assert Target.rust_triple(env, :board) == {:ok, "armv7-unknown-linux-gnueabihf"}
      assert Target.toolchain_prefix(%{"CC" => "gcc"}) == nil
    end

    test "an ARM board with an unknown CPU takes the version from the prefix" do
      env = nerves("arm", "gnueabihf", "", %{"CROSSCOMPILE" => "/x/armv6-nerves-linux-gnueabihf"})
      assert Target.rust_triple(env, :rpi0) == {:ok, "arm-unknown-linux-gnueabihf"}
    end
  end

  describe "rust_triple/2 overrides and errors" do
    test "MUONTRAP_CARGO_TARGET wins over everything, then CARGO_BUILD_TARGET" do
      env = nerves("aarch64", "gnu", "cortex_a72", %{"CARGO_BUILD_TARGET" => "b-triple"})
      assert Target.rust_triple(env, :rpi4) == {:ok, "b-triple"}

      env = Map.put(env, "MUONTRAP_CARGO_TARGET", "thumbv7neon-unknown-linux-gnueabihf")
      assert Target.rust_triple(env, :rpi4) == {:ok, "thumbv7neon-unknown-linux-gnueabihf"}
      assert Target.rust_triple(env, :host) == {:ok, "thumbv7neon-unknown-linux-gnueabihf"}
    end

    test "the host target ignores Nerves' variables; empty values count as unset" do
      assert Target.rust_triple(nerves("aarch64", "gnu", "cortex_a72"), :host) == {:ok, nil}
      assert Target.rust_triple(%{"MUONTRAP_CARGO_TARGET" => ""}, :host) == {:ok, nil}
      assert Target.rust_triple(%{"TARGET_ARCH" => "", "CC" => "cc"}, :rpi4) == {:ok, nil}
    end

    test "an unknown board is an error that names what was seen and the override" do
      for env <- [
            nerves("arm", "gnueabihf", "xscale", %{"CROSSCOMPILE" => "/x/arm-linux-gnueabihf"}),
            nerves("mipsel", "gnu", "mips32r2"),
            nerves("aarch64", "gnu", "cortex_a53", %{"TARGET_OS" => "freertos"}),
            nerves("aarch64", "gnueabihf", "cortex_a53")
          ] do
        assert {:error, message} = Target.rust_triple(env, :myboard)
        assert message =~ "no Rust target is known for MIX_TARGET=myboard"
        assert message =~ "TARGET_ARCH=#{env["TARGET_ARCH"]}"
        assert message =~ "set MUONTRAP_CARGO_TARGET"
      end
    end
  end

  describe "linker/3" do
    @host "x86_64-unknown-linux-gnu"

    test "CC, else $CROSSCOMPILE-gcc, for a cross build only" do
      cc = %{"CC" => "/tc/bin/aarch64-nerves-linux-gnu-gcc", "CROSSCOMPILE" => "/tc/bin/x"}
      assert Target.linker(cc, "aarch64-unknown-linux-gnu", @host) == cc["CC"]
      cross = %{"CROSSCOMPILE" => "/tc/bin/aarch64-nerves-linux-gnu"}

      assert Target.linker(cross, "aarch64-unknown-linux-gnu", @host) ==
               "/tc/bin/aarch64-nerves-linux-gnu-gcc"

      assert Target.linker(cc, nil, @host) == nil
      assert Target.linker(cc, @host, @host) == nil
      assert Target.linker(%{}, "aarch64-unknown-linux-gnu", @host) == nil
    end

    test "none when cargo's variable for the triple already names one" do
      var = Target.linker_var("armv7-unknown-linux-gnueabihf")
      assert var == "CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER"
      env = %{var => "clang-wrapper", "CC" => "arm-linux-gnueabihf-gcc"}
      assert Target.linker(env, "armv7-unknown-linux-gnueabihf", @host) == nil
    end
  end

  describe "nif_rustflags/2" do
    test "musl NIFs are linked dynamically; gnu ones need nothing" do
      assert Target.nif_rustflags(%{}, "aarch64-unknown-linux-gnu") == []
      assert Target.nif_rustflags(%{}, nil) == []

      assert Target.nif_rustflags(%{}, "x86_64-unknown-linux-musl") ==
               [
                 {"CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
                  "-Ctarget-feature=-crt-static"}
               ]
    end

    test "the user's flags are kept, in the variable cargo will read" do
      assert Target.nif_rustflags(
               %{"RUSTFLAGS" => "-Copt-level=z"},
               "arm-unknown-linux-musleabihf"
             ) ==
               [{"RUSTFLAGS", "-Copt-level=z -Ctarget-feature=-crt-static"}]

      env = %{"CARGO_ENCODED_RUSTFLAGS" => "-C\x1fdebuginfo=1", "RUSTFLAGS" => "-Cx"}

      assert Target.nif_rustflags(env, "aarch64-unknown-linux-musl") ==
               [{"CARGO_ENCODED_RUSTFLAGS", "-C\x1fdebuginfo=1\x1f-Ctarget-feature=-crt-static"}]
    end
  end

  test "debian_arch/1: Debian's name, or nil where Debian has no such port" do
    assert Target.debian_arch("aarch64-unknown-linux-gnu") == "arm64"
    assert Target.debian_arch("armv7-unknown-linux-gnueabihf") == "armhf"
    assert Target.debian_arch("arm-unknown-linux-gnueabihf") == nil
    assert Target.debian_arch("aarch64-unknown-linux-musl") == nil
  end

  test "nif_artifact/2: cargo's .dylib on macOS hosts and Apple targets, else .so" do
    assert Target.nif_artifact(nil, {:unix, :darwin}) == "libmuontrap_nif.dylib"
    assert Target.nif_artifact(nil, {:unix, :linux}) == "libmuontrap_nif.so"
    assert Target.nif_artifact(nil, {:unix, :freebsd}) == "libmuontrap_nif.so"
    assert Target.nif_artifact("aarch64-apple-darwin", {:unix, :linux}) == "libmuontrap_nif.dylib"
    assert Target.nif_artifact("x86_64-unknown-freebsd", {:unix, :darwin}) == "libmuontrap_nif.so"
  end

  test "feature_args/2: MUONTRAP_PORTABLE=1 turns on the portable feature of the port and the NIF" do
    packages = ~w(muontrap_port muontrap_test_helper)
    assert Target.feature_args(%{}, packages) == []
    assert Target.feature_args(%{"MUONTRAP_PORTABLE" => ""}, packages) == []

    assert Target.feature_args(%{"MUONTRAP_PORTABLE" => "1"}, packages) == [
             "--features=muontrap_port/portable"
           ]

    assert Target.feature_args(%{"MUONTRAP_PORTABLE" => "1"}, ["muontrap_nif"]) ==
             ["--features=muontrap_nif/portable"]
  end
end
