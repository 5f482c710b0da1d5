defmodule MuonTrap.Daemon do
  # The docs are a file of their own (also linked from the README).
  @external_resource Path.expand("../../docs/daemon.md", __DIR__)
  @moduledoc File.read!(Path.expand("../../docs/daemon.md", __DIR__))

  use GenServer

  require Logger

  alias MuonTrap.{Nif, Options, Protocol}
  alias MuonTrap.Daemon.{Ending, Output, Pipes, Readiness, Startup}

  # The BEAM reports a port program it could not exec by the errno as exit
  # status: 7 is E2BIG, an argument list the kernel refuses.
  @e2big 7

  @doc """
  Returns a specification to start this module under a supervisor.

  The argument is `[command, args]` or `[command, args, opts]`. Defaults to
  `restart: :permanent` and `shutdown: 500`.
  """
  @spec child_spec([term()]) :: Supervisor.child_spec()
  def child_spec([command, args]), do: child_spec([command, args, []])

  def child_spec([command, args, opts]) do
    %{
      id: __MODULE__,
      start: {__MODULE__, :start_link, [command, args, opts]},
      type: :worker,
      restart: :permanent,
      shutdown: 500
    }
  end

  @doc "Start/link a daemon GenServer for the specified command."
  @spec start_link(binary(), [binary()], keyword()) :: GenServer.on_start()
  def start_link(command, args, opts \\ []) do
    options = Options.validate(:daemon, command, args, opts)
    server_opts = if name = options[:name], do: [name: name], else: []

    with {:ok, pid} <- GenServer.start_link(__MODULE__, {command, options}, server_opts) do
      if options[:ready], do: with(:ok <- Startup.await(pid), do: {:ok, pid}), else: {:ok, pid}
    end
  end

  @doc """
  What the command has said about itself: `%{state: state, status_text:
  text | nil, main_pid: pid | nil}`. `state` is `:starting`, `:running`
  (no `:ready` configured), `:ready`, `:reloading` (after `RELOADING=1`,
  until `READY=1`) or `:stopping` (after `STOPPING=1`); `status_text` is
  the last `STATUS=` text and `main_pid` the last `MAINPID=`.
  """
  @spec status(GenServer.server()) :: %{
          state: Readiness.state(),
          status_text: String.t() | nil,
          main_pid: pos_integer() | nil
        }
  def status(server), do: GenServer.call(server, :status)

  @doc """
  Return the OS pid of the `muontrap` port binary, or `:error` before it has
  started (for example while `:wait_for` runs).
  """
  @spec os_pid(GenServer.server()) :: non_neg_integer() | :error
  def os_pid(server), do: GenServer.call(server, :os_pid)

  @doc """
  Return the OS pid of the command itself (the port binary's child), or
  `:error` before it has started. Use it to inspect or signal the program.
  """
  @spec command_os_pid(GenServer.server()) :: non_neg_integer() | :error
  def command_os_pid(server), do: GenServer.call(server, :command_os_pid)

  @doc """
  Write `data` to the command's stdin (with `stdin: :pipe`).

  Returns `:ok` once all of it is in the pipe. While the pipe is full the
  caller waits, up to `timeout` milliseconds, and then gets
  `{:error, :timeout}` (a prefix of `data` may have been written); the
  daemon itself never blocks, and goes on logging output and answering
  other calls. Writes from several callers go in the order they arrive.
  Returns `{:error, :closed}` once stdin is closed (`close_stdin/1`, or
  the command closed it or exited) and `{:error, :no_stdin}` without
  `stdin: :pipe`. Raises `ArgumentError` if `data` is not iodata.
  """
  @spec write(GenServer.server(), iodata(), timeout()) ::
          :ok | {:error, :timeout | :closed | :no_stdin}
  def write(server, data, timeout \\ 5_000) do
    data = IO.iodata_to_binary(data)
    # The daemon answers at the timeout itself; the margin covers a busy one.
    call_timeout = if timeout == :infinity, do: :infinity, else: timeout + 1_000
    GenServer.call(server, {:write, data, timeout}, call_timeout)
  end

  @doc """
  Close the command's stdin, so that it reads EOF. Writes still queued
  get `{:error, :closed}`. Returns `{:error, :no_stdin}` without
  `stdin: :pipe`; closing twice is `:ok`.
  """
  @spec close_stdin(GenServer.server()) :: :ok | {:error, :no_stdin}
  def close_stdin(server), do: GenServer.call(server, :close_stdin)

  @doc """
  Return the daemon's cgroup path, relative to the cgroup mount (for
  example `"muontrap/a1b2c3"` for `cgroup_base: "muontrap"`), or `nil`.
  """
  @spec cgroup_path(GenServer.server()) :: String.t() | nil
  def cgroup_path(server), do: GenServer.call(server, :cgroup_path)

  @doc """
  Read a cgroup v2 interface file such as `"memory.current"` from the
  daemon's cgroup.

  Returns `{:error, :no_cgroup}` without a cgroup and `{:error, :einval}`
  for a file name that is not a plain name inside the group.
  """
  @spec cgget(GenServer.server(), binary()) ::
          {:ok, String.t()} | {:error, File.posix() | :no_cgroup}
  def cgget(server, variable_name) do
    {path, beneath} = live_cgroup(server)
    Nif.cgget(path, beneath, variable_name)
  end

  @doc "Write `value` to a cgroup v2 interface file in the daemon's cgroup."
  @spec cgset(GenServer.server(), binary(), binary()) :: :ok | {:error, File.posix() | :no_cgroup}
  def cgset(server, variable_name, value),
    do:
      with(
        {path, beneath} <- live_cgroup(server),
        do: Nif.cgset(path, beneath, variable_name, value)
      )

  @doc """
  Return the daemon's writable cgroup settings.

  Keys mirror the v2 interface files with `.` replaced by `_`:
  `:cpu_weight`, `:cpu_max` (`:max` or `{quota_us, period_us}`), `:cpu_idle`,
  `:memory_min`, `:memory_low`, `:memory_high`, `:memory_max`,
  `:memory_swap_max` (bytes or `:max`), `:memory_oom_group`, `:pids_max`
  (count or `:max`), `:io_weight`, `:cpuset_cpus`, `:cpuset_mems`. Absent
  files are omitted; an empty map without a cgroup. The map is accepted as
  the `:cgroup` option, to start another daemon with the same settings.
  """
  @spec cgroup_config(GenServer.server()) :: %{required(atom()) => term()}
  def cgroup_config(server) do
    {{path, beneath}, files} = GenServer.call(server, :cgroup_config)
    Nif.cgroup_config(path, beneath, files)
  end

  @doc """
  Return statistics about the daemon.

  `:output_byte_count` counts the bytes of output received; `:cgroup` maps
  v2 statistics files (`"memory.current"`, `"cpu.stat"`, `"memory.pressure"`,
  ...) to their parsed contents, and is empty without a cgroup.
  """
  @spec statistics(GenServer.server()) :: %{
          output_byte_count: non_neg_integer(),
          cgroup: %{optional(String.t()) => term()}
        }
  def statistics(server) do
    {count, {path, beneath}, files} = GenServer.call(server, :statistics)
    %{output_byte_count: count, cgroup: Nif.statistics(path, beneath, files)}
  end

  # The port creates the cgroup just after the daemon starts: wait for the
  # command to be running so the group's files are there.
  defp live_cgroup(server), do: GenServer.call(server, :live_cgroup_path)

  # GenServer

  @impl GenServer
  def init({command, options}) do
    Process.flag(:trap_exit, true)

    unless options[:logger_fun] do
      Logger.metadata(Map.get(options, :logger_metadata, []))
    end

    # Joined, so the arguments show in formatted log lines.
    Logger.metadata(muontrap_cmd: command, muontrap_args: Enum.join(options.args, " "))
    Options.check_host!(options)

    state = %{
      command: command,
      options: options,
      port: nil,
      os_pid: :error,
      command_os_pid: :error,
      wait_task: nil,
      # Callers waiting for the command to start (see live_cgroup_path/1).
      waiting: [],
      pipes: Pipes.new(command, options),
      startup: Startup.new(options),
      # The group's statistics and knob files stay open between calls of
      # statistics/1 and cgroup_config/1 (a NIF resource): ~7x cheaper reads.
      open_files: if(options[:cgroup_path], do: Nif.open_files()),
      error: nil
    }

    case options[:wait_for] do
      nil -> {:ok, state, {:continue, :launch}}
      fun -> {:ok, %{state | wait_task: Task.async(fun)}}
    end
  end

  @impl GenServer
  def handle_continue(:launch, state) do
    {pipes, port_options, capture, handover_args} = Pipes.open(state.pipes, state.options)
    port = MuonTrap.Port.open(port_options, capture, handover_args)

    os_pid =
      case Port.info(port, :os_pid) do
        {:os_pid, pid} -> pid
        nil -> :error
      end

    {:noreply, %{state | port: port, os_pid: os_pid, pipes: Pipes.attach(pipes, port)}}
  end

  @impl GenServer
  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}
  def handle_call(:command_os_pid, _from, state), do: {:reply, state.command_os_pid, state}
  def handle_call(:cgroup_path, _from, state), do: {:reply, state.options[:cgroup_path], state}

  def handle_call(:status, _from, state),
    do: {:reply, Readiness.report(state.startup.readiness), state}

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

  defp reply_when_started(from, what, %{port: port, command_os_pid: :error} = state)
       when is_port(port) do
    {:noreply, %{state | waiting: [{from, what} | state.waiting]}}
  end

  defp reply_when_started(_from, what, state), do: {:reply, started_reply(what, state), state}

  defp started_reply(:cgroup_path, state), do: cgroup_ref(state)

  defp started_reply(:cgroup_config, state), do: {cgroup_ref(state), state.open_files}

  defp started_reply(:statistics, state),
    do: {Pipes.byte_count(state.pipes), cgroup_ref(state), state.open_files}

  defp cgroup_ref(state),
    do: {state.options[:cgroup_path], Map.get(state.options, :cgroup_beneath_beam, false)}

  @impl GenServer
  def handle_info(:muontrap_ready_timeout, state) do
    case Startup.timed_out(state.startup) do
      {:failed, startup} ->
        Logger.error("#{state.command}: not ready within #{state.startup.timeout} ms")
        state = %{state | startup: startup}

        # Its tree is terminated first; the EXIT that follows ends the start.
        if state.port do
          Port.command(state.port, Protocol.terminate())
          {:noreply, state}
        else
          stop(state, :ready_timeout)
        end

      :ignore ->
        {:noreply, state}
    end
  end

  def handle_info({ref, _result}, %{wait_task: %Task{ref: ref}} = state) do
    Process.demonitor(ref, [:flush])
    {:noreply, %{state | wait_task: nil}, {:continue, :launch}}
  end

  def handle_info({port, {:data, frame}}, %{port: port} = state) do
    case Protocol.decode(frame) do
      {:started, pid} ->
        state = %{
          state
          | command_os_pid: pid,
            startup: Startup.update(state.startup, &Readiness.started/1)
        }

        Enum.each(state.waiting, fn {from, what} ->
          GenServer.reply(from, started_reply(what, state))
        end)

        {:noreply, %{state | waiting: []}}

      {:error, message} ->
        Logger.error(message)
        {:noreply, %{state | error: message}}

      {:notify, assignments} ->
        update = &Readiness.notify(&1, assignments)
        {:noreply, %{state | startup: Startup.update(state.startup, update)}}

      {:watchdog, cause} ->
        Logger.error("#{state.command}: watchdog timeout (#{watchdog_cause(cause)})")
        {:noreply, %{state | startup: Startup.watchdog(state.startup)}}

      {:exit, status} ->
        Port.close(port)
        state = %{state | port: nil, pipes: Pipes.finish(state.pipes)}

        reason =
          if Startup.pending?(state.startup),
            do: {:exit_status, status},
            else: Ending.reason(status, state)

        stop(state, reason)

      _other ->
        {:noreply, state}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    # The port binary died without reporting the command's exit.
    Ending.cleanup_cgroup(state.options)
    reason = if status == @e2big, do: :e2big, else: {:muontrap_port_exited, status}
    stop(%{state | port: nil, pipes: Pipes.close(state.pipes)}, reason)
  end

  def handle_info({:EXIT, port, reason}, %{port: port} = state) do
    stop(%{state | port: nil, pipes: Pipes.close(state.pipes)}, reason)
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

  def handle_info(message, state) do
    case Pipes.handle_message(state.pipes, message) do
      {:ok, pipes} -> {:noreply, output_readiness(%{state | pipes: pipes})}
      :unknown -> {:noreply, state}
    end
  end

  defp output_readiness(state) do
    if Output.ready_seen?(state.pipes.output),
      do: %{state | startup: Startup.update(state.startup, &Readiness.output_matched/1)},
      else: state
  end

  defp watchdog_cause(:expired), do: "no WATCHDOG=1 within the interval"
  defp watchdog_cause(:triggered), do: "WATCHDOG=trigger"

  # While a :ready daemon starts, a stop is a failed start (Startup.finish/2).
  defp stop(state, reason) do
    case Startup.finish(state.startup, reason) do
      {:stop, reason, startup} -> {:stop, reason, %{state | startup: startup}}
      {:hold, startup} -> {:noreply, %{state | startup: startup}}
    end
  end

  @impl GenServer
  def terminate(_reason, %{port: port} = state) when is_port(port) do
    # Ask for SIGTERM then SIGKILL, and wait until the port reports that every
    # process is gone, so the daemon's stop means the OS processes are gone.
    Port.command(port, Protocol.terminate())
    Ending.await(port, state.options, state.pipes)
  end

  def terminate(_reason, %{wait_task: %Task{} = task}) do
    Task.shutdown(task, :brutal_kill)
  end

  def terminate(_reason, _state), do: :ok
end
