defmodule MuonTrap.PortBinary do
  @moduledoc false
  # Opens and closes the `muontrap` port binary for a validated set of options.
  #
  # The port's command line says only where the BEAM is (`--beam NAME`, the
  # socket of `MuonTrap.Stdio`): the options go to the NIF, once, which
  # hands them to the port binary in binary form with the descriptors
  # (docs/protocol.md, "The command value"). The port speaks the framed
  # protocol (`MuonTrap.Protocol`); the process that calls `open/3` owns
  # the port, so the command dies with it.

  alias MuonTrap.{Options, Stdio}

  # How often the hand-over wait checks that the port is still there.
  @handover_poll 100

  # The library's `:stdio_window` default: the capacity of the BEAM-owned
  # pipes (MuonTrap.Stdio), chosen from the window sweep of
  # `mix muontrap.bench` (docs/performance.md). Why the port binary's
  # own `--stdio-window` default differs is said at DEFAULT_WINDOW in
  # native/muontrap_command/src/lib.rs.
  @default_window 262_144

  @doc "The `:stdio_window` used when none is given."
  @spec default_window() :: pos_integer()
  def default_window, do: @default_window

  @doc """
  The `:delay_to_sigkill` used when none is given, in milliseconds: the
  port binary's default (`native/muontrap_wire`, read through the NIF),
  which applies when the option is not given.
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
  Open the port for `options` (from `MuonTrap.Options.validate/4`) and
  hand it the command and the descriptors, waiting until it has them (or
  has exited).

  `capture` says which output the command's OUTPUT pipe gets: `:output`
  (stdout, plus stderr with `:stderr_to_stdout`, or only stderr with
  `:capture_stderr_only`) or `:none`. `handover` is the second element
  `MuonTrap.Stdio.open/3` returned, whose pipes the command gets; `nil`
  for a command with no pipe (a socket of its own is made for the
  hand-over then).

  Raises `MuonTrap.Error` when the BEAM is out of descriptors or cannot
  fork (`"muontrap: cannot start the port binary: too many open files"`).
  """
  @spec open(Options.t(), :output | :none, Stdio.handover() | nil | []) :: port()
  def open(options, capture, handover \\ nil)

  def open(options, capture, empty) when empty in [nil, []] do
    {stdio, handover} = Stdio.open(window(options), [])

    try do
      open(options, capture, handover)
    after
      Stdio.close(stdio)
    end
  end

  def open(options, capture, handover) do
    stdio = Stdio.command!(handover, command(options, capture))
    port = spawn_port(options, stdio.name)
    _ = Stdio.await_handover(stdio, port, @handover_poll)
    port
  end

  @doc """
  What the NIF decodes into the port binary's command value
  (`muontrap_command::Command`): the validated options as they are, and
  which output is captured.
  """
  @spec command(Options.t(), :output | :none) :: map()
  def command(options, capture), do: Map.put(options, :capture, capture(options, capture))

  defp capture(_options, :none), do: :none

  defp capture(options, :output) do
    cond do
      options[:capture_stderr_only] -> :stderr_only
      options[:stderr_to_stdout] -> :stdout_and_stderr
      true -> :stdout
    end
  end

  defp spawn_port(options, name) do
    port_opts =
      [:binary, :exit_status, :use_stdio, :hide, {:packet, 4}, {:args, ["--beam", name]}] ++
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
