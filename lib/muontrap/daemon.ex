defmodule MuonTrap.Daemon do
  # The docs are a file of their own (also linked from the README).
  @external_resource Path.expand("../../docs/daemon.md", __DIR__)
  @moduledoc File.read!(Path.expand("../../docs/daemon.md", __DIR__))

  alias MuonTrap.{Nif, Options, Owner, Platform}
  alias MuonTrap.Daemon.{Listeners, Readiness, Server, Startup}

  # How long a daemon stays idle (no output, no call) before it hibernates.
  @hibernate_after 15_000

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

  @doc """
  Start/link a daemon GenServer for the specified command.

  With `owner: pid` (a process on any node), returns `{:error,
  :owner_down}` if that process is not alive (or its node cannot be
  reached), without starting anything; see "Daemons in a cluster".
  """
  @spec start_link(binary(), [binary()], keyword()) ::
          GenServer.on_start() | {:error, :owner_down}
  def start_link(command, args, opts \\ []) do
    options = Options.validate(:daemon, command, args, opts)
    if entries = options[:listen_sockets], do: Listeners.check!(entries)
    # An idle daemon's heap goes back to its state's size.
    server_opts =
      [hibernate_after: @hibernate_after] ++ if(name = options[:name], do: [name: name], else: [])

    # One that dies after this check is seen by the daemon's monitor.
    with :ok <- check_owner(options[:owner]),
         {:ok, pid} <- GenServer.start_link(Server, {command, options}, server_opts) do
      if options[:ready], do: with(:ok <- Startup.await(pid), do: {:ok, pid}), else: {:ok, pid}
    end
  end

  defp check_owner(nil), do: :ok
  defp check_owner(owner), do: if(Owner.alive?(owner), do: :ok, else: {:error, :owner_down})

  @doc """
  What the command has said about itself: `%{state: state, status_text:
  text | nil, main_pid: pid | nil}`. `state` is `:starting`, `:running`
  (no `:ready` configured), `:ready`, `:reloading` (after `RELOADING=1`,
  until `READY=1`), `:stopping` (after `STOPPING=1`) or `:relaunching`
  (a `:relaunch` waits for its delay; the next command is `:starting`);
  `status_text` is the last `STATUS=` text and `main_pid` the last
  `MAINPID=`, of the current command.
  """
  @spec status(GenServer.server()) :: %{
          state: Readiness.state(),
          status_text: String.t() | nil,
          main_pid: pos_integer() | nil
        }
  def status(server), do: GenServer.call(server, :status)

  @doc """
  Send `signal` (`:sighup`, `:sigusr1`, ... or a number) to the command's
  main process: the `MAINPID=` it reported, or else the process the port
  binary exec'd. The supervisor sends it through a pidfd, so a recycled
  pid is never hit. Returns `:ok`, `{:error, :not_running}` (not started
  yet, or gone) or `{:error, :refused}` (the kernel refused it). An
  unknown signal name raises `ArgumentError`.
  """
  @spec signal(GenServer.server(), MuonTrap.Signal.t()) ::
          :ok | {:error, :not_running | :refused}
  def signal(server, signal),
    do: GenServer.call(server, {:signal, MuonTrap.Signal.number(signal), :signal}, :infinity)

  @doc """
  Send the `:reload_signal` (default `:sighup`). With `ready: :notify`,
  returns once the command has reported `RELOADING=1` and then
  `READY=1`, like systemd's `Type=notify-reload`, or
  `{:error, :reload_timeout}` after `:ready_timeout`; otherwise `:ok`
  once the signal is sent. Errors as `signal/2`.
  """
  @spec reload(GenServer.server()) :: :ok | {:error, :not_running | :refused | :reload_timeout}
  def reload(server), do: GenServer.call(server, :reload, :infinity)

  @doc """
  Return the OS pid of the command's supervisor (a fork of the resident
  `muontrap --spawner`, as MuonTrap 2.0 returned its port binary's), or
  `:error` before it has started (for example while `:wait_for` runs).
  """
  @spec os_pid(GenServer.server()) :: non_neg_integer() | :error
  def os_pid(server), do: GenServer.call(server, :os_pid)

  @doc """
  Return the OS pid of the command itself (the supervisor's child), or
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
  daemon's cgroup, as the v2 file reads.

  On cgroup v1 and hybrid hosts the v2 names that the `:cgroup` option and
  `statistics/1` map to v1 files are read from those and converted
  (`"memory.current"` from `memory.usage_in_bytes`, `"cpu.max"` from
  `cpu.cfs_quota_us` and `cpu.cfs_period_us`, v1's unlimited as `max`);
  other names, v1 ones included, are read as they are. See "cgroup files"
  above.

  Returns `{:error, :no_cgroup}` without a cgroup, `{:error, :enoent}` for
  a file that exists in neither form, and `{:error, :einval}` for a file
  name that is not a plain name inside the group. Raises `ArgumentError`
  where there are no cgroups (macOS, FreeBSD, the portable build).
  """
  @spec cgget(GenServer.server(), binary()) ::
          {:ok, String.t()} | {:error, File.posix() | :no_cgroup}
  def cgget(server, variable_name) do
    Platform.require!(:cgroups, "MuonTrap.Daemon.cgget/2")
    {path, beneath} = live_cgroup(server)
    Nif.cgget(path, beneath, variable_name)
  end

  @doc """
  Write `value` to a cgroup v2 interface file in the daemon's cgroup.

  On cgroup v1 and hybrid hosts a v2 setting that the `:cgroup` option maps
  to v1 files is converted and written there (`"cpu.weight"` to
  `cpu.shares`, `"cpu.max"` to both CFS files in an order the kernel
  accepts at each step); a value the option would refuse is
  `{:error, :einval}`. Other names, v1 ones included, are written as they
  are. See "cgroup files" above. Raises `ArgumentError` where there are
  no cgroups (macOS, FreeBSD, the portable build).
  """
  @spec cgset(GenServer.server(), binary(), binary()) :: :ok | {:error, File.posix() | :no_cgroup}
  def cgset(server, variable_name, value) do
    Platform.require!(:cgroups, "MuonTrap.Daemon.cgset/3")

    with {path, beneath} <- live_cgroup(server),
         do: Nif.cgset(path, beneath, variable_name, value)
  end

  @doc """
  Return the daemon's writable cgroup settings.

  Keys mirror the v2 interface files with `.` replaced by `_`:
  `:cpu_weight`, `:cpu_max` (`:max` or `{quota_us, period_us}`), `:cpu_idle`,
  `:memory_min`, `:memory_low`, `:memory_high`, `:memory_max`,
  `:memory_swap_max` (bytes or `:max`), `:memory_oom_group`, `:pids_max`
  (count or `:max`), `:io_weight`, `:cpuset_cpus`, `:cpuset_mems`. Absent
  files are omitted; an empty map without a cgroup. The map is accepted as
  the `:cgroup` option, to start another daemon with the same settings.
  Raises `ArgumentError` where there are no cgroups (macOS, FreeBSD, the
  portable build).
  """
  @spec cgroup_config(GenServer.server()) :: %{required(atom()) => term()}
  def cgroup_config(server) do
    Platform.require!(:cgroups, "MuonTrap.Daemon.cgroup_config/1")
    {{path, beneath}, files} = GenServer.call(server, :cgroup_config)
    Nif.cgroup_config(path, beneath, files)
  end

  @doc """
  Return statistics about the daemon.

  `:output_byte_count` counts the bytes of output received, of every
  command the daemon ran; `:cgroup` maps v2 statistics files
  (`"memory.current"`, `"cpu.stat"`, `"memory.pressure"`, ...) to their
  parsed contents, and is empty without a cgroup. With `:relaunch`,
  `:relaunch_count` says how many times the command was relaunched.
  """
  @spec statistics(GenServer.server()) :: %{
          required(:output_byte_count) => non_neg_integer(),
          required(:cgroup) => %{optional(String.t()) => term()},
          optional(:relaunch_count) => non_neg_integer()
        }
  def statistics(server) do
    {counts, {path, beneath}, files} = GenServer.call(server, :statistics)
    Map.put(counts, :cgroup, Nif.statistics(path, beneath, files))
  end

  # The port creates the cgroup just after the daemon starts: wait for the
  # command to be running so the group's files are there.
  defp live_cgroup(server), do: GenServer.call(server, :live_cgroup_path)
end
