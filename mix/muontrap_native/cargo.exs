defmodule Mix.Tasks.Compile.MuontrapNative.Cargo do
  @moduledoc """
  Runs the workspace's cargo builds side by side and shows their output one
  build after the other, as cargo writes it: a status line per crate
  (`Compiling libc v0.2.…`, then `Finished`), warnings and errors. Without
  them a first build, which takes a while, looks hung.

  Side by side because the port binary and the NIF are built with two
  profiles (Cargo.toml says why), hence two cargo runs: one after the
  other, the first one's last step (the port's LTO and link in a single
  codegen unit) keeps one core busy while the other waits, and only two
  small crates are shared. Cargo locks each profile's directory on its
  own, so both runs share one target dir. Figures: docs/performance.md,
  "The first build".
  """

  # A line that shows a run has got past resolving and fetching, where it
  # holds cargo's package cache lock: the next run starts then, so that it
  # does not print "Blocking waiting for file lock on package cache".
  @under_way ~r/^\s*(Compiling|Finished|error)\b/

  @typedoc "Arguments after `cargo`, and variables added to the environment."
  @type run :: {[String.t()], [{String.t(), String.t() | nil}]}

  @doc """
  Runs each of `runs` with `cargo` in `dir`, all at once (each starts when
  the one before it is under way), and returns 0 or the exit status of the
  first run that failed. The first run's output is shown as it comes; each
  other run's is held until those before it have finished. After a failed
  run the others are waited for and their output dropped: they would
  repeat its errors about shared crates.
  """
  @spec run(String.t(), Path.t(), [run, ...]) :: non_neg_integer()
  def run(cargo, dir, [first | rest]) do
    opener = fn {args, env} -> open(cargo, dir, args, env) end
    loop(%{open: opener, jobs: [job(opener.(first))], pending: rest, status: 0})
  end

  defp open(cargo, dir, args, env) do
    # A nil value unsets the variable (`false` for a port).
    env = for {name, value} <- env, do: {to_charlist(name), value != nil and to_charlist(value)}

    Port.open({:spawn_executable, cargo}, [
      :binary,
      :exit_status,
      :stderr_to_stdout,
      :hide,
      {:line, 16_384},
      {:args, args},
      {:cd, dir},
      {:env, env}
    ])
  end

  defp job(port), do: %{port: port, held: [], exit: nil}

  # Done when every run has exited.
  defp loop(%{jobs: [], pending: []} = state), do: state.status

  defp loop(state) do
    receive do
      {port, {:data, {eol, text}}} when is_port(port) ->
        if known?(state, port) do
          line = if eol == :eol, do: text, else: nil
          text = if eol == :eol, do: [text, ?\n], else: text
          state |> output(port, text) |> start_next(port, line)
        else
          state
        end

      {port, {:exit_status, status}} when is_port(port) ->
        if known?(state, port),
          do: state |> exited(port, status) |> start_next(port, :exited),
          else: state
    end
    |> loop()
  end

  defp known?(state, port), do: Enum.any?(state.jobs, &(&1.port == port))

  # The first job's output is shown; the others' is held. None is kept
  # once a run has failed: the jobs left are after it.
  defp output(%{status: 0, jobs: [%{port: port} | _]} = state, port, text) do
    IO.write(text)
    state
  end

  defp output(%{status: 0} = state, port, text) do
    update(state, port, &%{&1 | held: [&1.held, text]})
  end

  defp output(state, _port, _text), do: state

  defp exited(state, port, status), do: settle(update(state, port, &%{&1 | exit: status}))

  # The first job has finished: the next one's held output is shown, or,
  # if it failed, no more runs start and their output is dropped.
  defp settle(%{jobs: [%{exit: exit} | rest]} = state) when exit != nil do
    state =
      if state.status == 0 and exit != 0,
        do: %{state | status: exit, pending: []},
        else: state

    case rest do
      [next | others] when state.status == 0 ->
        IO.write(next.held)
        settle(%{state | jobs: [%{next | held: []} | others]})

      _ ->
        settle(%{state | jobs: rest})
    end
  end

  defp settle(state), do: state

  # The next pending run starts when the last one started is under way
  # (`event` is a line it printed) or has exited.
  defp start_next(%{pending: [next | pending]} = state, port, event) do
    last = List.last(state.jobs)

    if (last == nil or last.port == port) and
         (event == :exited or (is_binary(event) and event =~ @under_way)) do
      %{state | jobs: state.jobs ++ [job(state.open.(next))], pending: pending}
    else
      state
    end
  end

  defp start_next(state, _port, _event), do: state

  defp update(state, port, fun) do
    %{state | jobs: Enum.map(state.jobs, &if(&1.port == port, do: fun.(&1), else: &1))}
  end
end
