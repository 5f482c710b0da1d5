defmodule MuonTrap.Test.DependentApp do
  @moduledoc false
  # `mix run` in a fresh project that depends on muontrap, with a clean
  # Mix environment (nothing of this project's MIX_* leaks in) and this
  # project's cargo target dir, so its build reuses what `mix test` built.

  # Below the test's own timeout: a cold cargo build takes minutes.
  @timeout_s 840

  @doc "Run `script` with `mix run -e` in `dir`: `{output, exit_status}`."
  def mix_run(dir, script) do
    clean = ~w(MIX_EXS MIX_TARGET MIX_BUILD_PATH MIX_BUILD_ROOT MIX_DEPS_PATH MIX_LOCKFILE)

    System.cmd("timeout", ["-k", "10", "#{@timeout_s}", "mix", "run", "-e", script],
      cd: dir,
      stderr_to_stdout: true,
      env:
        [
          {"MIX_ENV", "dev"},
          {"CARGO_TARGET_DIR", Mix.Tasks.Compile.MuontrapNative.target_dir()},
          {"HEX_OFFLINE", "1"}
        ] ++ Enum.map(clean, &{&1, nil})
    )
  end
end
