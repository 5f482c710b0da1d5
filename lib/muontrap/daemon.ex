defmodule MuonTrap.Daemon do
  @moduledoc """
  Wrap an OS process in a GenServer so that it can be supervised.

  For example, in your children list add `MuonTrap.Daemon` like this:

      children = [
        {MuonTrap.Daemon, ["my_server", ["--options", "foo"], [cd: "/some_directory"]]}
      ]

      Supervisor.start_link(children, strategy: :one_for_one)

  The list is `MuonTrap.cmd/3`'s parameters: the program, its arguments and
  options. Every `MuonTrap.cmd/3` option except `:into`, `:timeout`, `:input`
  and `:lines` is
  available, plus:

    * `:name` - register the daemon under this name
    * `:logger_fun` - a 1-arity function, `{m, f}` or `{m, f, a}` called with
      each line of output (`apply(m, f, [line | a])`), or a 2-arity function
      called as `fun.(stream, line)` with `stream` `:stdout` or `:stderr`;
      replaces the logging options and their levels
    * `:log_output` - log each line of output at this `Logger` level
    * `:log_stderr` - capture stderr on a pipe of its own and log its lines at
      this level (stdout keeps `:log_output`); not with `:stderr_to_stdout`
    * `:stdin` - `:pipe` to give the command a stdin that `write/3` writes and
      `close_stdin/1` closes (default `:null`, `/dev/null`)
    * `:log_prefix` - prefix for each logged line (default: the command followed by `": "`)
    * `:log_transform` - a function applied to each line before logging (default:
      replace invalid UTF-8 on Elixir 1.16+, or log a short placeholder for a
      line that is not valid UTF-8 on older versions)
    * `:logger_metadata` - keyword list merged into the daemon's logger metadata;
      `:muontrap_cmd` and `:muontrap_args` are always set
    * `:stderr_to_stdout` - log stderr too (default `false`)
    * `:capture_stderr_only` - log only stderr (default `false`); stderr is then
      captured and counted in `statistics/1` even without a log option
    * `:exit_status_to_reason` - function from a non-zero exit status to the
      GenServer stop reason (default: `:error_exit_status`)
    * `:wait_for` - a 0-arity function run before the OS process is launched;
      raise to abort the launch (the daemon stops with the exception's exit
      reason, `{exception, stacktrace}`)

  `MuonTrap.Options` has the table of what the stderr options do together.

  An exit status of 0 stops the daemon with `:normal`, so a `:transient`
  child is not restarted. Stopping the daemon kills the OS process and every
  descendant.

  Several daemons under one supervisor need distinct ids:

      Supervisor.child_spec({MuonTrap.Daemon, ["my_server", []]}, id: :server1)
  """
  use GenServer

  require Logger

  alias MuonTrap.{Nif, Options, Protocol}
  alias MuonTrap.Daemon.Pipes

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
    GenServer.start_link(__MODULE__, {command, options}, server_opts)
  end

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

  # The port binary died without cleaning up (e.g. it was SIGKILLed): kill
  # what is left in its cgroup and remove the group.
  defp cleanup_cgroup(state) do
    case MuonTrap.Cgroup.cleanup(state.options) do
      :ok -> :ok
      {:error, reason} -> Logger.error("could not clean up the cgroup: #{inspect(reason)}")
    end
  end

  @impl GenServer
  def handle_info({ref, _result}, %{wait_task: %Task{ref: ref}} = state) do
    Process.demonitor(ref, [:flush])
    {:noreply, %{state | wait_task: nil}, {:continue, :launch}}
  end

  def handle_info({port, {:data, frame}}, %{port: port} = state) do
    case Protocol.decode(frame) do
      {:started, pid} ->
        state = %{state | command_os_pid: pid}

        Enum.each(state.waiting, fn {from, what} ->
          GenServer.reply(from, started_reply(what, state))
        end)

        {:noreply, %{state | waiting: []}}

      {:error, message} ->
        Logger.error(message)
        {:noreply, %{state | error: message}}

      {:exit, status} ->
        Port.close(port)
        state = %{state | port: nil, pipes: Pipes.finish(state.pipes)}
        {:stop, exit_reason(status, state), state}

      _other ->
        {:noreply, state}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    # The port binary died without reporting the command's exit.
    cleanup_cgroup(state)
    reason = if status == @e2big, do: :e2big, else: {:muontrap_port_exited, status}
    {:stop, reason, %{state | port: nil, pipes: Pipes.close(state.pipes)}}
  end

  def handle_info({:EXIT, port, reason}, %{port: port} = state) do
    {:stop, reason, %{state | port: nil, pipes: Pipes.close(state.pipes)}}
  end

  # A :wait_for that raises stops the daemon with the exception's own exit
  # reason, {exception, stacktrace}, as a linked Task's crash does.
  def handle_info({:EXIT, pid, reason}, %{wait_task: %Task{pid: pid}} = state)
      when reason != :normal do
    {:stop, reason, %{state | wait_task: nil}}
  end

  def handle_info({:DOWN, ref, :process, _pid, reason}, %{wait_task: %Task{ref: ref}} = state) do
    {:stop, reason, %{state | wait_task: nil}}
  end

  def handle_info(message, state) do
    case Pipes.handle_message(state.pipes, message) do
      {:ok, pipes} -> {:noreply, %{state | pipes: pipes}}
      :unknown -> {:noreply, state}
    end
  end

  @impl GenServer
  def terminate(_reason, %{port: port} = state) when is_port(port) do
    # Ask for SIGTERM then SIGKILL, and wait until the port reports that every
    # process is gone, so the daemon's stop means the OS processes are gone.
    Port.command(port, Protocol.terminate())
    delay = Map.get(state.options, :delay_to_sigkill, 500)
    await_exit(port, state, System.monotonic_time(:millisecond) + delay + 2_000)
  end

  def terminate(_reason, %{wait_task: %Task{} = task}) do
    Task.shutdown(task, :brutal_kill)
  end

  def terminate(_reason, _state), do: :ok

  defp await_exit(port, state, deadline) do
    timeout = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, frame}} ->
        case Protocol.decode(frame) do
          {:exit, _status} ->
            Port.close(port)
            _ = Pipes.finish(state.pipes)
            :ok

          _other ->
            await_exit(port, state, deadline)
        end

      {^port, {:exit_status, _}} ->
        cleanup_cgroup(state)

      message ->
        case Pipes.handle_message(state.pipes, message) do
          {:ok, pipes} -> await_exit(port, %{state | pipes: pipes}, deadline)
          :unknown -> await_exit(port, state, deadline)
        end
    after
      timeout ->
        # Closing stdin makes the port binary finish the kill on its own.
        Port.close(port)
        :ok
    end
  end

  defp exit_reason(0, %{error: nil} = state) do
    Logger.info("#{state.command}: Process exited successfully")
    :normal
  end

  defp exit_reason(status, %{error: nil} = state) do
    Logger.error("#{state.command}: Process exited with status #{status}")
    to_reason = Map.get(state.options, :exit_status_to_reason, fn _ -> :error_exit_status end)
    to_reason.(status)
  end

  defp exit_reason(_status, %{error: message}), do: {:muontrap_error, message}
end
