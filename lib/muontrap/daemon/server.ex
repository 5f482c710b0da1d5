defmodule MuonTrap.Daemon.Server do
  @moduledoc false
  # The GenServer behind MuonTrap.Daemon (whose functions are the API):
  # launching the supervisor, its frames, the pipes, readiness, signal
  # requests, relaunches and the stop.
  use GenServer

  require Logger

  alias MuonTrap.{Nif, Options, Protocol}
  alias MuonTrap.Daemon.{Ending, Listeners, Output, Pipes, Readiness, Relaunch, Report}
  alias MuonTrap.Daemon.{Signals, Startup}

  @impl GenServer
  def init({command, options}) do
    Process.flag(:trap_exit, true)

    unless options[:logger_fun] do
      Logger.metadata(Map.get(options, :logger_metadata, []))
    end

    # Joined, so the arguments show in formatted log lines.
    Logger.metadata(muontrap_cmd: command, muontrap_args: Enum.join(options.args, " "))
    options = Options.check_host!(options)

    state = %{
      command: command,
      options: options,
      channel: nil,
      os_pid: :error,
      command_os_pid: :error,
      wait_task: nil,
      # Callers waiting for the command to start (see live_cgroup_path/1).
      waiting: [],
      pipes: Pipes.new(command, options),
      startup: Startup.new(options),
      signals: Signals.new(),
      relaunch: Relaunch.new(options[:relaunch]),
      # Held from here to the stop: every command launched gets them.
      listeners: if(entries = options[:listen_sockets], do: Listeners.take!(entries)),
      # The group's statistics and knob files stay open between calls of
      # statistics/1 and cgroup_config/1 (a NIF resource): re-reading an open
      # file is far cheaper than opening it (docs/performance.md, "cgroup reads").
      open_files: if(options[:cgroup_path], do: Nif.open_files()),
      error: nil,
      # The `:owner`'s monitor: its death, or its node's, stops the daemon.
      owner: if(owner = options[:owner], do: Process.monitor(owner)),
      # How the last command ended, for crash reports (Report).
      last_exit: nil
    }

    case options[:wait_for] do
      nil -> {:ok, state, {:continue, :launch}}
      fun -> {:ok, %{state | wait_task: Task.async(fun)}}
    end
  end

  @impl GenServer
  def handle_continue(:launch, state) do
    pipes = Pipes.start(state.pipes, state.options, state.listeners)
    # The start's garbage (the BEAM's environment, the command value) is
    # collected while the supervisor forks and execs, so that the
    # hibernation once the command has started is cheap.
    :erlang.garbage_collect()
    {:noreply, %{state | channel: pipes.engine.stdio, os_pid: :error, pipes: pipes}}
  end

  @impl GenServer
  # Known once the supervisor said hello.
  def handle_call(:os_pid, from, %{os_pid: :error, channel: channel} = state)
      when channel != nil,
      do: {:noreply, %{state | waiting: [{from, :os_pid} | state.waiting]}}

  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}
  def handle_call(:command_os_pid, _from, state), do: {:reply, state.command_os_pid, state}
  def handle_call(:cgroup_path, _from, state), do: {:reply, state.options[:cgroup_path], state}

  def handle_call(:status, _from, state),
    do: {:reply, Readiness.report(state.startup.readiness), state}

  # Before STARTED the port holds the request until the program runs; only
  # without a port (not launched yet, or gone) is nothing running.
  def handle_call({:signal, _number, _kind}, _from, %{channel: nil} = state),
    do: {:reply, {:error, :not_running}, state}

  def handle_call({:signal, number, kind}, from, state),
    do:
      {:noreply,
       %{state | signals: Signals.send_signal(state.signals, state.channel, number, from, kind)}}

  def handle_call(:reload, from, state) do
    number = MuonTrap.Signal.number(Map.get(state.options, :reload_signal, :sighup))

    kind =
      if state.options[:ready] == :notify,
        do: {:reload, Map.get(state.options, :ready_timeout, Startup.default_timeout())},
        else: :signal

    handle_call({:signal, number, kind}, from, state)
  end

  def handle_call(:await_ready, from, state) do
    case Startup.await_call(state.startup, from) do
      {:reply, reply} -> {:reply, reply, state}
      {:stop, reply} -> {:stop, :normal, reply, state}
      {:wait, startup} -> {:noreply, %{state | startup: startup}}
    end
  end

  def handle_call({:write, data, timeout}, from, state) do
    case Pipes.write(state.pipes, from, data, timeout) do
      {:noreply, pipes} -> {:noreply, %{state | pipes: pipes}}
      {:reply, reply, pipes} -> {:reply, reply, %{state | pipes: pipes}}
    end
  end

  def handle_call(:close_stdin, _from, state) do
    {reply, pipes} = Pipes.close_stdin(state.pipes)
    {:reply, reply, %{state | pipes: pipes}}
  end

  def handle_call(:statistics, from, state), do: reply_when_started(from, :statistics, state)

  def handle_call(:cgroup_config, from, state),
    do: reply_when_started(from, :cgroup_config, state)

  def handle_call(:live_cgroup_path, from, state),
    do: reply_when_started(from, :cgroup_path, state)

  defp reply_when_started(from, what, %{channel: channel, command_os_pid: :error} = state)
       when channel != nil do
    {:noreply, %{state | waiting: [{from, what} | state.waiting]}}
  end

  defp reply_when_started(_from, what, state), do: {:reply, started_reply(what, state), state}

  defp started_reply(:cgroup_path, state), do: cgroup_ref(state)

  defp started_reply(:cgroup_config, state), do: {cgroup_ref(state), state.open_files}

  defp started_reply(:statistics, state) do
    counts = %{output_byte_count: Pipes.byte_count(state.pipes)}

    counts =
      if state.relaunch, do: Map.put(counts, :relaunch_count, state.relaunch.count), else: counts

    {counts, cgroup_ref(state), state.open_files}
  end

  defp cgroup_ref(state),
    do: {state.options[:cgroup_path], Map.get(state.options, :beneath_own_cgroup, false)}

  @impl GenServer
  def handle_info({:muontrap_ready_timeout, tag}, state) do
    case Startup.timed_out(state.startup, tag) do
      {:failed, startup} ->
        Logger.error("#{state.command}: not ready within #{state.startup.timeout} ms")
        state = %{state | startup: startup}

        # Its tree is terminated first; the EXIT that follows ends the start.
        if state.channel do
          _ = MuonTrap.Stdio.send_frame(state.channel, Protocol.terminate())
          {:noreply, state}
        else
          stop(state, :ready_timeout)
        end

      :ignore ->
        {:noreply, state}
    end
  end

  def handle_info(:muontrap_relaunch, state),
    do: {:noreply, relaunch(state), {:continue, :launch}}

  def handle_info({:muontrap_reload_timeout, tag}, state),
    do: {:noreply, %{state | signals: Signals.timed_out(state.signals, tag)}}

  def handle_info({ref, _result}, %{wait_task: %Task{ref: ref}} = state) do
    Process.demonitor(ref, [:flush])
    {:noreply, %{state | wait_task: nil}, {:continue, :launch}}
  end

  # A :wait_for that raises stops the daemon with the exception's own exit
  # reason, {exception, stacktrace}, as a linked Task's crash does.
  def handle_info({:EXIT, pid, reason}, %{wait_task: %Task{pid: pid}} = state)
      when reason != :normal do
    stop(%{state | wait_task: nil}, reason)
  end

  def handle_info({:DOWN, ref, :process, _pid, reason}, %{wait_task: %Task{ref: ref}} = state) do
    stop(%{state | wait_task: nil}, reason)
  end

  # terminate/2 then stops the command, as at any stop.
  def handle_info({:DOWN, ref, :process, _pid, reason}, %{owner: ref} = state) when ref != nil do
    Logger.info("#{state.command}: owner down (#{inspect(reason)}), stopping")
    stop(%{state | owner: nil}, {:shutdown, {:owner_down, reason}})
  end

  def handle_info(message, state) do
    case Pipes.handle_message(state.pipes, message) do
      {events, pipes} ->
        events
        |> handle_events(output_readiness(%{state | pipes: pipes}))
        |> hibernate_when_started(events)

      :unknown ->
        {:noreply, state}
    end
  end

  # A started command's daemon mostly waits: hibernating once shrinks
  # the heap the start grew to the size of its state (docs/performance.md,
  # round 9).
  defp hibernate_when_started({:noreply, state}, events) do
    if Enum.any?(events, &match?({:started, _}, &1)),
      do: {:noreply, state, :hibernate},
      else: {:noreply, state}
  end

  defp hibernate_when_started(other, _events), do: other

  # The command's events, from its engine (MuonTrap.Engine), in order.
  defp handle_events([], state), do: {:noreply, state}

  defp handle_events([event | rest], state) do
    case handle_event(event, state) do
      {:noreply, state} -> handle_events(rest, state)
      other -> other
    end
  end

  defp handle_event({:started, pid}, state) do
    state = update_startup(%{state | command_os_pid: pid}, &Readiness.started/1)

    Enum.each(state.waiting, fn {from, what} ->
      GenServer.reply(from, started_reply(what, state))
    end)

    {:noreply, %{state | waiting: []}}
  end

  defp handle_event({:supervisor, pid}, state) do
    {os_pid, waiting} = Enum.split_with(state.waiting, &match?({_, :os_pid}, &1))
    Enum.each(os_pid, fn {from, :os_pid} -> GenServer.reply(from, pid) end)
    {:noreply, %{state | os_pid: pid, waiting: waiting}}
  end

  # The kernel refused the argument list: as a failed exec of the program
  # itself, the daemon stops with :e2big.
  defp handle_event({:exec_error, :e2big}, state) do
    last_exit = {:exec_error, :e2big}
    stop(%{state | channel: nil, pipes: Pipes.close(state.pipes), last_exit: last_exit}, :e2big)
  end

  defp handle_event({:error, message}, state) do
    Logger.error(message)
    {:noreply, %{state | error: message}}
  end

  defp handle_event({:notify, assignments}, state) do
    signals = Signals.notify(state.signals, assignments)
    {:noreply, update_startup(%{state | signals: signals}, &Readiness.notify(&1, assignments))}
  end

  defp handle_event({:signaled, result}, state),
    do: {:noreply, %{state | signals: Signals.answered(state.signals, result)}}

  defp handle_event({:watchdog, cause}, state) do
    Logger.error("#{state.command}: watchdog timeout (#{watchdog_cause(cause)})")
    {:noreply, %{state | startup: Startup.watchdog(state.startup)}}
  end

  defp handle_event({:exit, status}, state) do
    state = %{
      state
      | channel: nil,
        pipes: Pipes.finish(state.pipes),
        last_exit: {:exit_status, status}
    }

    # A start that fails because the command never ran (the port
    # reported an ERROR, say an exec failure) fails with that error.
    reason =
      if Startup.starting?(state.startup) and state.error == nil,
        do: {:exit_status, status},
        else: Ending.reason(status, state)

    ended(state, reason)
  end

  # The supervisor died without reporting the command's exit (what was
  # left of its process group and cgroup is killed).
  defp handle_event({:port_died, _status, _error}, state) do
    reason = :muontrap_supervisor_died
    last_exit = :supervisor_died
    stop(%{state | channel: nil, pipes: Pipes.close(state.pipes), last_exit: last_exit}, reason)
  end

  defp handle_event(_other, state), do: {:noreply, state}

  defp output_readiness(state) do
    if Output.ready_seen?(state.pipes.output),
      do: update_startup(state, &Readiness.output_matched/1),
      else: state
  end

  # Once the command is up, the time it stays up counts for a relaunch.
  defp update_startup(state, fun) do
    startup = Startup.update(state.startup, fun)

    if state.relaunch && Readiness.up?(startup.readiness),
      do: %{state | startup: startup, relaunch: Relaunch.up(state.relaunch)},
      else: %{state | startup: startup}
  end

  # The command ended: a failure after the daemon's start may be answered
  # with a relaunch in place; anything else stops the daemon.
  defp ended(state, reason) do
    with true <- Startup.failed?(state.startup, reason),
         {:relaunch, delay, relaunch} <- Relaunch.failed(state.relaunch) do
      Logger.warning("#{state.command}: relaunching in #{delay} ms (relaunch #{relaunch.count})")
      Process.send_after(self(), :muontrap_relaunch, delay)

      {:noreply,
       %{
         state
         | relaunch: relaunch,
           signals: Signals.abort(state.signals),
           startup: Startup.relaunching(state.startup)
       }}
    else
      _no_relaunch -> stop(state, reason)
    end
  end

  defp relaunch(state) do
    %{
      state
      | os_pid: :error,
        command_os_pid: :error,
        error: nil,
        pipes: Pipes.reset(state.pipes, state.options),
        startup: Startup.relaunched(state.startup),
        # The group is made afresh: files opened in the old one tell nothing.
        open_files: if(state.options[:cgroup_path], do: Nif.open_files())
    }
  end

  defp watchdog_cause(:expired), do: "no WATCHDOG=1 within the interval"
  defp watchdog_cause(:triggered), do: "WATCHDOG=trigger"

  # While a :ready daemon starts, a stop is a failed start (Startup.finish/2).
  defp stop(state, reason) do
    state = %{state | signals: Signals.abort(state.signals)}

    case Startup.finish(state.startup, reason) do
      {:stop, reason, startup} -> {:stop, reason, %{state | startup: startup}}
      {:hold, startup} -> {:noreply, %{state | startup: startup}}
    end
  end

  # Crash reports and :sys.get_status/1 show a summary of the state
  # (Report), not its pipes and structs; :sys.get_state/1 is unchanged.
  # OTP 25+ calls format_status/1 (a GenServer callback from Elixir 1.17 on).
  if {:format_status, 1} in GenServer.behaviour_info(:callbacks), do: @impl(GenServer)

  @doc false
  def format_status(status) do
    status
    |> update_present(:state, &Report.summary/1)
    |> update_present(:message, &Report.message/1)
  end

  defp update_present(map, key, fun),
    do: if(Map.has_key?(map, key), do: Map.update!(map, key, fun), else: map)

  # Older OTPs call format_status/2.
  @impl GenServer
  def format_status(:terminate, [_pdict, state]), do: Report.summary(state)
  def format_status(_normal, [_pdict, state]), do: [data: [{~c"State", Report.summary(state)}]]

  @impl GenServer
  def terminate(_reason, %{channel: channel} = state) when channel != nil do
    # Ask for SIGTERM then SIGKILL, and wait until the supervisor reports that every
    # process is gone, so the daemon's stop means the OS processes are gone.
    _ = Pipes.terminate(state.pipes)
    :ok
  end

  def terminate(_reason, %{wait_task: %Task{} = task}) do
    Task.shutdown(task, :brutal_kill)
  end

  def terminate(_reason, _state), do: :ok
end
