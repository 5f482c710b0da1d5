defmodule MuonTrap.PortBinary do
  @moduledoc false
  # The `muontrap` binary (priv/muontrap) and what a command's start hands
  # it: the validated options go to the NIF, once, which hands them to
  # the command's supervisor in binary form with the descriptors
  # (docs/protocol.md, "The command value"). The supervisor is a fork of
  # the resident spawner, which runs this binary (`--spawner`); it speaks
  # the framed protocol (`MuonTrap.Protocol`) on the command's channel,
  # which the process that starts the command owns, so the command dies
  # with it.

  alias MuonTrap.{Options, Stdio}

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
  def path, do: MuonTrap.Nif.port_binary_path()

  @doc """
  Start the command of `options` (from `MuonTrap.Options.validate/4`) on
  `stdio` (`MuonTrap.Stdio.open/3`): the spawner forks its supervisor,
  which gets the command and the pipes. Returns at once.

  `capture` says which output the command's OUTPUT pipe gets: `:output`
  (stdout, plus stderr with `:stderr_to_stdout`, or only stderr with
  `:capture_stderr_only`) or `:none`. `notice` asks for an end notice
  (`MuonTrap.Stdio.hand_over!/4`).

  Raises `MuonTrap.Error` when the command cannot be started (no
  descriptors left, the spawner cannot run).
  """
  @spec start(Stdio.t(), Options.t(), :output | :none, boolean()) :: Stdio.t()
  def start(stdio, options, capture, notice \\ false) do
    # The supervisor is asked for first: its fork and start overlap with
    # the building of the command (the environment of the moment, the
    # NIF's decoding).
    path = path()

    stdio
    |> Stdio.request!(path)
    |> Stdio.hand_over!(command(options, capture), path, notice)
  end

  @doc """
  What the NIF decodes into the port binary's command value
  (`muontrap_command::Command`): the validated options as they are, and
  which output is captured.
  """
  @spec command(Options.t(), :output | :none) :: map()
  def command(options, capture) do
    options
    |> Map.put(:capture, capture(options, capture))
    # The BEAM's environment of the moment: the spawner keeps that of its
    # own start, and System.put_env/2 never reaches an OS process. (The
    # NIF adds the BEAM's directory of the moment.)
    |> Map.put(:base_env, environment())
  end

  # :os.env/0 packed into one binary of NAME=VALUE entries, each followed
  # by a NUL, as execve takes them (native/muontrap_command/src/env_block.rs):
  # converting its lists one by one was a large share of a start
  # (docs/performance.md, rounds 13 and 17). A code point above 255 cannot
  # be packed so; that environment goes as pairs.
  defp environment do
    env = :os.env()

    try do
      {:latin1, :erlang.iolist_to_binary(for {name, value} <- env, do: [name, ?=, value, 0])}
    rescue
      ArgumentError -> for {name, value} <- env, do: {List.to_string(name), List.to_string(value)}
    end
  end

  defp capture(_options, :none), do: :none

  defp capture(options, :output) do
    cond do
      options[:capture_stderr_only] -> :stderr_only
      options[:stderr_to_stdout] -> :stdout_and_stderr
      true -> :stdout
    end
  end
end
