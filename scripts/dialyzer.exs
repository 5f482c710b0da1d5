# Runs OTP's dialyzer on the compiled app, without dialyxir (hex is
# unreachable); .ci/run runs it and fails on any warning:
#   mix run --no-start scripts/dialyzer.exs
# The PLT (erts, kernel, stdlib, elixir, logger, mix) is built on first use
# into _build/, named by the OTP and Elixir versions it was built from, so
# an upgrade builds a new one instead of reading a stale one.
apps = [:erts, :kernel, :stdlib, :elixir, :logger, :mix]

name = "dialyzer-otp#{System.otp_release()}-elixir#{System.version()}.plt"
plt = Path.join(Path.dirname(Mix.Project.build_path()), name) |> to_charlist()

unless File.exists?(plt) do
  IO.puts("building #{plt}")
  libs = for app <- apps, do: :code.lib_dir(app, :ebin)
  :dialyzer.run(analysis_type: :plt_build, output_plt: plt, files_rec: libs)
end

ebin = Path.join(Mix.Project.app_path(), "ebin") |> to_charlist()
warnings = :dialyzer.run(init_plt: plt, files_rec: [ebin], warnings: [:unmatched_returns])
Enum.each(warnings, &IO.puts(:dialyzer.format_warning(&1)))
IO.puts("#{length(warnings)} dialyzer warnings")
if warnings != [], do: System.halt(1)
