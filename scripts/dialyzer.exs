# Runs dialyzer on the compiled app, without dialyxir (hex is unreachable):
#   mix run scripts/dialyzer.exs
# The PLT (erts, kernel, stdlib, compiler, elixir, logger, mix) is built once
# into _build/dialyzer.plt; that takes several minutes on two cores.
plt = Path.join(Mix.Project.build_path() |> Path.dirname(), "dialyzer.plt") |> to_charlist()
apps = [:erts, :kernel, :stdlib, :compiler, :elixir, :logger, :mix]

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
