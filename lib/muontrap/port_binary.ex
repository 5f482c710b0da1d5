defmodule MuonTrap.PortBinary do
  @moduledoc """
  Opens and closes the `muontrap` port binary for a validated set of options.

  The port speaks the framed protocol (`MuonTrap.Protocol`); the process
  that calls `open/3` owns the port, so the command dies with it.
  """

  alias MuonTrap.{Cgroup, Options}

  # The library's `:stdio_window` default: the capacity of the BEAM-owned
  # pipes (MuonTrap.Stdio), chosen from the window sweep of
  # `mix muontrap.bench` (docs/performance.md). Why the port binary's
  # own `--stdio-window` default differs is said at DEFAULT_WINDOW in
  # native/muontrap_port/src/args.rs.
  @default_window 262_144

  @doc "The `:stdio_window` used when none is given."
  @spec default_window() :: pos_integer()
  def default_window, do: @default_window

  @doc """
  The `:delay_to_sigkill` used when none is given, in milliseconds: the
  port binary's own `--delay-to-sigkill` default (`native/muontrap_wire`,
  read through the NIF), as the flag is passed only when the option is
  given.
  """
  @spec default_delay_to_sigkill() :: non_neg_integer()
  def default_delay_to_sigkill, do: MuonTrap.Nif.constants().delay_to_sigkill

  @doc "The `:stdio_window` of validated `options`."
  @spec window(map()) :: pos_integer()
  def window(options), do: Map.get(options, :stdio_window, @default_window)

  @doc "The `:delay_to_sigkill` of validated `options`."
  @spec delay_to_sigkill(map()) :: non_neg_integer()
  def delay_to_sigkill(options),
    do: Map.get_lazy(options, :delay_to_sigkill, &default_delay_to_sigkill/0)

  @doc "Path to the port binary."
  @spec path() :: String.t()
  def path do
    # Cached: :code.priv_dir/1 is a call to the code server, on every cmd/3.
    case :persistent_term.get({__MODULE__, :path}, nil) do
      nil ->
        path = Path.join(:code.priv_dir(:muontrap), "muontrap")
        :persistent_term.put({__MODULE__, :path}, path)
        path

      path ->
        path
    end
  end

  @doc """
  Open the port for `options` (from `MuonTrap.Options.validate/4`).

  `capture` says which output to relay: `:output` (stdout, plus stderr
  with `:stderr_to_stdout`, or only stderr with `:capture_stderr_only`) or
  `:none`. `extra_args` go before the program (the `--handover` arguments
  of `MuonTrap.Stdio.open/1`, through which the port receives the pipe that
  captured output goes into).

  Raises `MuonTrap.Error` when the BEAM is out of descriptors or cannot
  fork (`"muontrap: cannot start the port binary: too many open files"`).
  """
  @spec open(Options.t(), :output | :none, [String.t()]) :: port()
  def open(options, capture, extra_args \\ []) do
    port_opts =
      [
        :binary,
        :exit_status,
        :use_stdio,
        :hide,
        {:packet, 4},
        {:args, args(options, capture, extra_args)}
      ] ++
        Enum.flat_map([:cd, :parallelism], &port_option(options, &1))

    Port.open({:spawn_executable, path()}, port_opts)
  rescue
    e in ErlangError -> open_error(e, __STACKTRACE__)
  end

  # Out of descriptors or processes: the BEAM's reason alone (`ErlangError`
  # `:emfile`) would not say what failed.
  defp open_error(%ErlangError{original: reason}, _stacktrace)
       when reason in [:emfile, :enfile, :eagain] do
    raise MuonTrap.Error,
      message: "muontrap: cannot start the port binary: #{:file.format_error(reason)}"
  end

  defp open_error(e, stacktrace), do: reraise(e, stacktrace)

  @doc """
  The port binary's command line for `options`, without the program.

      iex> opts = MuonTrap.Options.validate(:cmd, "/bin/sh", [], delay_to_sigkill: 100)
      iex> MuonTrap.PortBinary.args(opts, :output, ["--handover", "muontrap-1-0"])
      ["--framed", "--capture-output", "--delay-to-sigkill", "100", "--handover", "muontrap-1-0", "--", "/bin/sh"]
  """
  @spec args(Options.t(), :output | :none, [String.t()]) :: [String.t()]
  def args(options, capture, extra_args \\ []) do
    ["--framed"] ++
      capture_args(options, capture) ++
      value_arg(options, :delay_to_sigkill, "--delay-to-sigkill") ++
      value_arg(options, :uid, "--uid") ++
      value_arg(options, :gid, "--gid") ++
      groups_arg(options) ++
      value_arg(options, :arg0, "--arg0") ++
      notify_args(options) ++
      value_arg(options, :watchdog, "--watchdog") ++
      attribute_args(options) ++
      env_args(options) ++
      cgroup_args(options) ++
      extra_args ++
      ["--", options.cmd | options.args]
  end

  defp capture_args(_options, :none), do: []

  defp capture_args(options, :output) do
    cond do
      options[:capture_stderr_only] -> ["--capture-stderr-only"]
      options[:stderr_to_stdout] -> ["--capture-output", "--capture-stderr"]
      true -> ["--capture-output"]
    end
  end

  defp value_arg(options, key, flag) do
    case Map.fetch(options, key) do
      {:ok, value} -> [flag, to_string(value)]
      :error -> []
    end
  end

  defp attribute_args(options) do
    stop =
      with {:ok, sig} <- Map.fetch(options, :stop_signal),
           do: ["--stop-signal", "#{MuonTrap.Signal.number(sig)}"],
           else: (_ -> [])

    umask =
      with {:ok, mask} <- Map.fetch(options, :umask),
           do: ["--umask", Integer.to_string(mask, 8)],
           else: (_ -> [])

    stop ++
      umask ++
      value_arg(options, :nice, "--nice") ++
      Enum.flat_map(Map.get(options, :rlimits, %{}), fn {name, {soft, hard}} ->
        ["--rlimit", "#{name}=#{limit(soft)}:#{limit(hard)}"]
      end)
  end

  # :env as the port binary's arguments, not as its own environment: the
  # BEAM would re-encode each value as UTF-8 (and refuses binaries), while
  # arguments reach the program byte for byte.
  defp env_args(options) do
    Enum.flat_map(Map.get(options, :env, []), fn
      {name, nil} -> ["--unsetenv", name]
      {name, value} -> ["--setenv", name <> "=" <> value]
    end)
  end

  defp limit(:infinity), do: "infinity"
  defp limit(n), do: Integer.to_string(n)

  defp notify_args(%{ready: :notify}), do: ["--notify"]
  defp notify_args(_options), do: []

  defp groups_arg(%{groups: groups}), do: ["--groups", Enum.map_join(groups, ",", &to_string/1)]
  defp groups_arg(_options), do: []

  defp cgroup_args(%{cgroup_path: path} = options) do
    {controllers, writes} = cgroup_writes(options)

    beneath = if options[:beneath_own_cgroup], do: ["--beneath-own-cgroup"], else: []

    # A group with no controller still contains and kills everything in it.
    controller_args =
      case controllers do
        [] -> ["--no-controllers"]
        _ -> Enum.flat_map(controllers, &["-c", &1])
      end

    ["-g", path] ++
      beneath ++ controller_args ++ Enum.flat_map(writes, fn {f, v} -> ["-s", "#{f}=#{v}"] end)
  end

  defp cgroup_args(_options), do: []

  # The translation MuonTrap.Options.check_host!/1 kept for this host;
  # made here only for options that did not go through it.
  defp cgroup_writes(%{cgroup: settings} = options) do
    {_made_for, writes} = Cgroup.translate(settings, Map.get(options, :cgroup_writes, {nil, nil}))
    writes
  end

  defp cgroup_writes(_options), do: {[], []}

  defp port_option(%{cd: cd}, :cd), do: [{:cd, cd}]

  defp port_option(%{parallelism: p}, :parallelism), do: [{:parallelism, p}]
  defp port_option(_options, _key), do: []

  @doc """
  Close `port` (or nothing, for `nil`) without the caller getting any
  more of its messages: unlinked first, so a caller trapping exits gets
  no `{:EXIT, port, _}`, and one already queued is flushed. The port
  still closes if the caller dies in between: it is the port's owner.
  Closing stdin makes the port binary terminate the command's tree.
  """
  @spec close(port() | nil) :: :ok
  def close(nil), do: :ok

  def close(port) do
    Process.unlink(port)

    try do
      Port.close(port)
    rescue
      # Already closed: at EXIT, or the port binary exited.
      ArgumentError -> :ok
    end

    flush(port)
  end

  defp flush(port) do
    receive do
      {^port, _} -> flush(port)
      {:EXIT, ^port, _} -> flush(port)
    after
      0 -> :ok
    end
  end
end
