defmodule MuonTrap.Options do
  @moduledoc """
  Validate and normalize the options of `MuonTrap.cmd/3` and
  `MuonTrap.Daemon`.

  `validate/4` checks options without running anything. Errors match
  `System.cmd/3`: a missing executable raises `ErlangError` with `:enoent`,
  anything malformed raises `ArgumentError` with one line that names the
  option and what to pass. It reads nothing of the host's cgroup layout, so
  a `:cgroup` map validates the same way on a build machine and on the
  board it runs on; `check_host!/1` is what the command's start adds.

  Where stderr goes, for every combination of the options that say it
  (the one table of it; the README and `MuonTrap.Daemon` point here):

  | options | stdout | stderr |
  | --- | --- | --- |
  | none | captured (`cmd/3`, `stream!/3`; a daemon only to log it) | not captured: the BEAM's stderr |
  | `stderr_to_stdout: true` | captured | merged into stdout, in order |
  | `capture_stderr_only: true` | `/dev/null` | captured in stdout's place (a daemon's lines are tagged `:stderr`) |
  | both of the above | `/dev/null` | `capture_stderr_only` wins, as in MuonTrap 2.0 |
  | `stderr: :separate` (`stream!/3` only) | `{:stdout, data}` | `{:stderr, data}`, on a pipe of its own; `ArgumentError` with either option above |
  | `log_stderr: level` (daemons only) | logged at `:log_output` | own pipe, logged at `level`; `ArgumentError` with `stderr_to_stdout`; with `capture_stderr_only`, stderr is logged at `level` |
  | `logger_fun` (daemons only) | passed to it (`{:tagged, fun}`: as `fun.(:stdout, line)`) | passed to it when captured (`{:tagged, fun}`: as `fun.(:stderr, line)`); the fun overrides every log level |

  A daemon's `:output_byte_count` counts every captured byte, of both streams.
  """

  alias MuonTrap.{Bytes, Cgroup, Nif}
  alias MuonTrap.Options.Values

  @common [
    :cd,
    :env,
    :arg0,
    :stderr_to_stdout,
    :capture_stderr_only,
    :parallelism,
    :cgroup,
    :cgroup_base,
    :cgroup_path,
    :beneath_own_cgroup,
    :delay_to_sigkill,
    :uid,
    :gid,
    :groups,
    :stdio_window,
    :stop_signal,
    :umask,
    :nice,
    :rlimits,
    # Elixir's alone (MuonTrap.Owner): the supervisor never sees it.
    :owner
  ]

  @cmd_only [:into, :timeout, :input, :lines]

  @stream_only [:timeout, :input, :lines, :stderr]

  @daemon_only [
    :name,
    :logger_fun,
    :log_output,
    :log_prefix,
    :log_transform,
    :logger_metadata,
    :exit_status_to_reason,
    :wait_for,
    :stdin,
    :log_stderr,
    :ready,
    :ready_timeout,
    :watchdog,
    :reload_signal,
    :relaunch,
    :listen_sockets
  ]

  @u32_max Values.u32_max()

  @log_levels [:emergency, :alert, :critical, :error, :warning, :warn, :notice, :info, :debug]

  @typedoc "Where the options are used."
  @type context :: :cmd | :stream | :daemon

  @typedoc "Validated options: every given option plus `:cmd` (the resolved executable) and `:args`."
  @type t :: %{
          required(:cmd) => binary(),
          required(:args) => [binary()],
          optional(atom()) => term()
        }

  @doc """
  Validate `command`, `args` and `opts` for `context` and return them as a map.

  The executable is looked up in `PATH` like `System.cmd/3` does; the map's
  `:cmd` is its full path. A `:cgroup_base` is turned into a fresh
  `:cgroup_path` beneath it.

      iex> opts = MuonTrap.Options.validate(:cmd, "echo", ["hi"], stdio_window: 1024)
      iex> {Path.basename(opts.cmd), opts.args, opts.stdio_window}
      {"echo", ["hi"], 1024}
  """
  @spec validate(context(), binary(), [binary()], keyword()) :: t()
  def validate(context, command, args, opts) when context in [:cmd, :stream, :daemon],
    do: validate(context, command, args, opts, :always)

  @doc false
  # cmd/3's own path: a bare name may be left to the supervisor's execvp
  # (see resolve_command/4); the errors are the same, raised once it fails.
  @spec validate_for_cmd(binary(), [binary()], keyword()) :: t()
  def validate_for_cmd(command, args, opts), do: validate(:cmd, command, args, opts, :port_may)

  defp validate(context, command, args, opts, lookup) do
    assert_no_null_byte!(command, context)

    unless is_list(args) and Enum.all?(args, &is_binary/1) do
      raise ArgumentError, "all arguments for #{caller(context)} must be binaries"
    end

    Enum.each(args, &assert_no_null_byte!(&1, context))

    unless Keyword.keyword?(opts) do
      raise ArgumentError,
            "options for #{caller(context)} must be a keyword list, got: #{inspect(opts)}"
    end

    allowed = @common ++ only(context)

    options =
      opts
      |> Enum.reduce(%{args: args}, fn {key, value}, acc ->
        if key in allowed do
          MuonTrap.Platform.check_option!(key, value)

          acc
          |> Map.put(key, validate_option(context, key, value))
          |> translate_cgroup(key, value)
        else
          raise ArgumentError, "invalid option #{inspect(key)} for #{caller(context)}"
        end
      end)
      |> resolve_cgroup()
      |> check_stderr!()

    Map.put(
      options,
      :cmd,
      resolve_command(lookup, command, options) || :erlang.error(:enoent, [command, args, opts])
    )
  end

  # The :cgroup map's one translation per start (MuonTrap.Cgroup.translate/2).
  defp translate_cgroup(options, :cgroup, settings),
    do: Map.put(options, :cgroup_writes, Cgroup.translate(settings))

  defp translate_cgroup(options, _key, _value), do: options

  @doc """
  Check what depends on the host the command runs on, which `validate/4`
  leaves out so that the same options validate the same way on a build
  machine and on the board, and return the options to start with. A
  `:cgroup` key with no cgroup v1 equivalent whose controller is bound to
  v1 here raises `ArgumentError` (the map is translated for this host
  here, once, where that differs from pure v2); a `:cd` that is not a
  directory raises `MuonTrap.Error` naming it (rather than the BEAM
  failing to start the port).
  """
  @spec check_host!(t()) :: t()
  def check_host!(options) do
    options = check_cgroup!(options)
    if cd = options[:cd], do: check_cd!(cd)
    options
  end

  defp check_cgroup!(%{cgroup: settings, cgroup_writes: kept} = options),
    do: %{options | cgroup_writes: Cgroup.translate(settings, kept)}

  defp check_cgroup!(options), do: options

  defp check_cd!(cd) do
    case File.stat(cd) do
      {:ok, %File.Stat{type: :directory}} ->
        :ok

      {:ok, _} ->
        raise MuonTrap.Error,
          message: "muontrap: cannot run in :cd #{inspect(cd)}: not a directory"

      {:error, reason} ->
        raise MuonTrap.Error,
          message: "muontrap: cannot run in :cd #{inspect(cd)}: #{:file.format_error(reason)}"
    end
  end

  # Where System.cmd/3 would search PATH, cmd/3 lets the supervisor's
  # execvp do it when that finds the same program: PATH is inherited
  # unchanged (no :env entry for it) and has only absolute entries (so :cd
  # cannot change the result). A failed exec comes back as EXEC_ERROR and
  # cmd/3 raises :enoent then. The BEAM's own lookup runs file operations
  # on a dirty IO scheduler, and waking one is a large share of the cost
  # of a short command (docs/performance.md, round 3). Absolute paths are
  # not looked up, as in System.cmd/3 (validate/4 checks that they exist:
  # System.cmd/3 raises :enoent for a missing one when it opens the port).
  defp resolve_command(lookup, command, options) do
    cond do
      Path.type(command) == :absolute ->
        if lookup == :port_may or File.exists?(command), do: command

      lookup == :port_may and port_lookup?(command, options) ->
        command

      true ->
        find_executable(command)
    end
  end

  # :os.find_executable/1's answer, in one NIF call instead of a file
  # server call per PATH entry (native/muontrap_nif/src/executable.rs).
  defp find_executable(command), do: Nif.find_executable(command, System.get_env("PATH", ""))

  defp port_lookup?(command, options) do
    not Bytes.member?(command, ?/) and
      not Enum.any?(Map.get(options, :env, []), fn {k, _} -> k == "PATH" end) and
      Nif.path_all_absolute()
  end

  defp only(:cmd), do: @cmd_only
  defp only(:stream), do: @stream_only
  defp only(:daemon), do: @daemon_only

  defp check_stderr!(%{stderr: :separate} = options) do
    for key <- [:stderr_to_stdout, :capture_stderr_only], options[key] do
      raise ArgumentError,
            "stderr: :separate cannot be combined with #{key}: true (stderr has its own pipe)"
    end

    options
  end

  # capture_stderr_only wins over stderr_to_stdout, here too.
  defp check_stderr!(%{log_stderr: _, stderr_to_stdout: true} = options)
       when not is_map_key(options, :capture_stderr_only) or
              :erlang.map_get(:capture_stderr_only, options) != true do
    raise ArgumentError,
          ":log_stderr cannot be combined with stderr_to_stdout: true (stderr is merged into stdout)"
  end

  defp check_stderr!(options), do: options

  defp caller(:cmd), do: "MuonTrap.cmd/3"
  defp caller(:stream), do: "MuonTrap.stream!/3"
  defp caller(:daemon), do: "MuonTrap.Daemon"

  defp assert_no_null_byte!(binary, context) when is_binary(binary) do
    if Bytes.member?(binary, 0) do
      raise ArgumentError,
            "cannot execute #{caller(context)} for program with null byte, got: #{inspect(binary)}"
    end
  end

  defp assert_no_null_byte!(other, context) do
    raise ArgumentError,
          "the command for #{caller(context)} must be a binary, got: #{inspect(other)}"
  end

  defp validate_option(_, :cd, v) when is_binary(v) and v != "", do: v
  defp validate_option(_, :arg0, v) when is_binary(v), do: v
  defp validate_option(_, :env, v), do: Values.env!(v)

  defp validate_option(_, key, v)
       when key in [:stderr_to_stdout, :capture_stderr_only, :parallelism] and is_boolean(v),
       do: v

  # Every key and value is checked by translating for pure v2
  # (translate_cgroup/3); what this host's layout adds, when the command
  # starts (check_host!/1).
  defp validate_option(_, :cgroup, v), do: v

  defp validate_option(_, key, v) when key in [:cgroup_base, :cgroup_path],
    do: Cgroup.validate_path!(v, key)

  defp validate_option(_, :beneath_own_cgroup, v) when is_boolean(v), do: v

  defp validate_option(_, :delay_to_sigkill, v) when v in 0..@u32_max, do: v
  defp validate_option(_, key, v) when key in [:uid, :gid], do: Values.id!(key, v)
  defp validate_option(_, :groups, v) when is_list(v), do: Enum.map(v, &Values.id!(:groups, &1))
  # The smallest `:stdio_window` is the `muontrap` binary's `--stdio-window`
  # bound (MIN_WINDOW in native/muontrap_wire), from the NIF.
  defp validate_option(_, :stdio_window, v) when v in 1..@u32_max,
    do: if(v >= min_window(), do: v, else: invalid!(:stdio_window, v))

  defp validate_option(_, :stop_signal, v), do: Values.stop_signal!(v)

  defp validate_option(:daemon, :reload_signal, v) do
    _ = MuonTrap.Signal.number(v)
    v
  end

  defp validate_option(:daemon, :relaunch, v), do: MuonTrap.Daemon.Relaunch.validate!(v)
  defp validate_option(:daemon, :listen_sockets, v), do: MuonTrap.Daemon.Listeners.validate!(v)
  defp validate_option(_, :umask, v) when v in 0..0o777, do: v
  defp validate_option(_, :nice, v) when v in -20..19, do: v
  defp validate_option(_, :rlimits, v), do: Values.rlimits!(v)
  defp validate_option(_, :owner, v) when is_pid(v) or v == nil, do: v
  defp validate_option(:cmd, :into, v), do: v
  defp validate_option(_, :timeout, v) when v in 1..@u32_max or v == :infinity, do: v
  defp validate_option(_, :input, v), do: MuonTrap.Input.new(v)
  defp validate_option(_, :lines, v) when v in 1..@u32_max, do: v
  defp validate_option(:stream, :stderr, :separate), do: :separate
  defp validate_option(:daemon, :stdin, v) when v in [:pipe, :null], do: v
  defp validate_option(:daemon, :log_stderr, v) when v in @log_levels, do: v
  defp validate_option(:daemon, :ready, :notify), do: :notify
  defp validate_option(:daemon, :ready, {:output, %Regex{}} = v), do: v

  defp validate_option(:daemon, :ready, {:output, text} = v) when is_binary(text) and text != "",
    do: v

  defp validate_option(:daemon, :ready_timeout, v) when v in 1..@u32_max or v == :infinity, do: v
  defp validate_option(:daemon, :watchdog, v) when v in 1..@u32_max, do: v

  defp validate_option(:daemon, :name, v)
       when is_atom(v) or (is_tuple(v) and elem(v, 0) in [:global, :via]),
       do: v

  # As in MuonTrap 2.0: a 1-arity fun or an MFA. A fun told the stream has
  # a shape of its own, so a 2-arity fun passed by mistake is refused.
  defp validate_option(:daemon, :logger_fun, f) when is_function(f, 1), do: f
  defp validate_option(:daemon, :logger_fun, {:tagged, f} = v) when is_function(f, 2), do: v

  defp validate_option(:daemon, :logger_fun, {m, f, a} = mfa)
       when is_atom(m) and is_atom(f) and is_list(a),
       do: mfa

  defp validate_option(:daemon, :logger_fun, {m, f}) when is_atom(m) and is_atom(f),
    do: {m, f, []}

  defp validate_option(:daemon, :log_output, v) when v in @log_levels, do: v
  defp validate_option(:daemon, :log_prefix, v) when is_binary(v), do: v
  defp validate_option(:daemon, :log_transform, f) when is_function(f, 1), do: f
  defp validate_option(:daemon, :logger_metadata, v) when is_list(v), do: v
  defp validate_option(:daemon, :exit_status_to_reason, f) when is_function(f, 1), do: f
  defp validate_option(:daemon, :wait_for, f) when is_function(f, 0), do: f

  defp validate_option(_context, key, value), do: invalid!(key, value)

  defp invalid!(key, value) do
    raise ArgumentError,
          "invalid option #{inspect(key)} with value #{inspect(value)}, expected #{expected(key)}"
  end

  defp min_window, do: MuonTrap.Nif.constants().min_window

  defp expected(:cd), do: "a directory as a string"
  defp expected(:arg0), do: "a string"
  defp expected(:delay_to_sigkill), do: "milliseconds, an integer in 0..#{@u32_max}"
  defp expected(:stdio_window), do: "bytes, an integer in #{min_window()}..#{@u32_max}"
  defp expected(:timeout), do: "milliseconds, an integer in 1..#{@u32_max}, or :infinity"
  defp expected(:groups), do: "a list of group names or gids"
  defp expected(:name), do: "an atom, {:global, term} or {:via, module, term}"

  defp expected(:logger_fun),
    do:
      "a 1-arity function, {module, function}, {module, function, args} " <>
        "or {:tagged, fun} with a 2-arity fun called as fun.(stream, line)"

  defp expected(key) when key in [:log_output, :log_stderr],
    do: "a Logger level, one of #{inspect(@log_levels)}"

  defp expected(:lines), do: "a buffer size in bytes, an integer in 1..#{@u32_max}"
  defp expected(:stderr), do: ":separate"
  defp expected(:stdin), do: ":pipe or :null"
  defp expected(:umask), do: "an integer in 0..0o777, such as 0o077"
  defp expected(:nice), do: "an absolute nice value, an integer in -20..19"
  defp expected(:ready), do: ":notify or {:output, pattern} with a non-empty string or a Regex"
  defp expected(:ready_timeout), do: "milliseconds, an integer in 1..#{@u32_max}, or :infinity"
  defp expected(:watchdog), do: "milliseconds, an integer in 1..#{@u32_max}"
  defp expected(:log_prefix), do: "a string"
  defp expected(:logger_metadata), do: "a keyword list"
  defp expected(:wait_for), do: "a 0-arity function"
  defp expected(:owner), do: "a pid (on any node) or nil"

  defp expected(key) when key in [:log_transform, :exit_status_to_reason],
    do: "a 1-arity function"

  defp expected(_boolean), do: "true or false"

  defp resolve_cgroup(%{cgroup_base: _, cgroup_path: _}) do
    raise ArgumentError, "use either :cgroup_base or :cgroup_path, not both"
  end

  defp resolve_cgroup(%{cgroup_base: base} = options) do
    options |> Map.delete(:cgroup_base) |> Map.put(:cgroup_path, Cgroup.random_path(base))
  end

  defp resolve_cgroup(%{cgroup: settings} = options)
       when not is_map_key(options, :cgroup_path) and map_size(settings) > 0 do
    raise ArgumentError, "the :cgroup option requires a :cgroup_path or :cgroup_base to apply to"
  end

  defp resolve_cgroup(options), do: options
end
