defmodule MuonTrap.Options do
  @moduledoc """
  Validate and normalize the options of `MuonTrap.cmd/3` and
  `MuonTrap.Daemon`.

  Errors match `System.cmd/3`: a missing executable raises `ErlangError`
  with `:enoent` (for `MuonTrap.cmd/3` a bare name may be looked up by the
  port binary instead, and `cmd/3` raises once its exec fails), anything
  malformed raises `ArgumentError`.
  """

  alias MuonTrap.Cgroup

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
    :cgroup_beneath_beam,
    :delay_to_sigkill,
    :uid,
    :gid,
    :groups,
    :stdio_window
  ]

  @cmd_only [:into, :timeout]

  @daemon_only [
    :name,
    :logger_fun,
    :log_output,
    :log_prefix,
    :log_transform,
    :logger_metadata,
    :exit_status_to_reason,
    :wait_for
  ]

  @log_levels [:emergency, :alert, :critical, :error, :warning, :warn, :notice, :info, :debug]

  @typedoc "Where the options are used."
  @type context :: :cmd | :daemon

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
  def validate(context, command, args, opts) when context in [:cmd, :daemon] do
    assert_no_null_byte!(command, context)

    unless is_list(args) and Enum.all?(args, &is_binary/1) do
      raise ArgumentError, "all arguments for #{caller(context)} must be binaries"
    end

    Enum.each(args, &assert_no_null_byte!(&1, context))

    unless Keyword.keyword?(opts) do
      raise ArgumentError,
            "options for #{caller(context)} must be a keyword list, got: #{inspect(opts)}"
    end

    allowed = @common ++ if(context == :cmd, do: @cmd_only, else: @daemon_only)

    options =
      opts
      |> Enum.reduce(%{args: args}, fn {key, value}, acc ->
        if key in allowed do
          Map.put(acc, key, validate_option(context, key, value))
        else
          raise ArgumentError, "invalid option #{inspect(key)} for #{caller(context)}"
        end
      end)
      |> resolve_cgroup()
      |> check_exclusive(:stderr_to_stdout, :capture_stderr_only)

    Map.put(
      options,
      :cmd,
      resolve_command(context, command, options) || :erlang.error(:enoent, [command, args, opts])
    )
  end

  # Where System.cmd/3 would search PATH, cmd/3 lets the port binary's
  # execvp do it when that finds the same program: PATH is inherited
  # unchanged (no :env entry for it) and has only absolute entries (so :cd
  # cannot change the result). A failed exec comes back as EXEC_ERROR and
  # cmd/3 raises :enoent then. The BEAM's own lookup runs file operations
  # on a dirty IO scheduler, which cost about 0.3 ms of CPU per call; the
  # difference between 0.6x and 0.8x System.cmd/3's rate for many short
  # commands (README, "Performance"). Absolute paths are not looked up,
  # as in System.cmd/3. A Daemon starts once: it keeps the up-front check.
  defp resolve_command(context, command, options) do
    cond do
      context == :daemon -> find_executable(command)
      Path.type(command) == :absolute -> command
      port_lookup?(command, options) -> command
      true -> find_executable(command)
    end
  end

  defp find_executable(command) do
    case :os.find_executable(to_charlist(command)) do
      false -> nil
      path -> List.to_string(path)
    end
  end

  defp port_lookup?(command, options) do
    path = System.get_env("PATH")

    not String.contains?(command, "/") and is_binary(path) and
      not Enum.any?(Map.get(options, :env, []), fn {k, _} -> k == "PATH" end) and
      Enum.all?(:binary.split(path, ":", [:global]), &String.starts_with?(&1, "/"))
  end

  defp caller(:cmd), do: "MuonTrap.cmd/3"
  defp caller(:daemon), do: "MuonTrap.Daemon"

  defp assert_no_null_byte!(binary, context) when is_binary(binary) do
    if String.contains?(binary, <<0>>) do
      raise ArgumentError,
            "cannot execute commands with null bytes in #{caller(context)}, got: #{inspect(binary)}"
    end
  end

  defp assert_no_null_byte!(other, context) do
    raise ArgumentError,
          "the command for #{caller(context)} must be a binary, got: #{inspect(other)}"
  end

  defp validate_option(_, :cd, v) when is_binary(v), do: v
  defp validate_option(_, :arg0, v) when is_binary(v), do: v
  defp validate_option(_, :env, v), do: validate_env(v)

  defp validate_option(_, key, v)
       when key in [:stderr_to_stdout, :capture_stderr_only, :parallelism] and is_boolean(v),
       do: v

  defp validate_option(_, :cgroup, v) do
    # Validates every key and value, for this host's layout, now rather
    # than when the port starts.
    Cgroup.to_writes(v, Cgroup.v1_controllers())
    v
  end

  defp validate_option(_, key, v) when key in [:cgroup_base, :cgroup_path],
    do: Cgroup.validate_path!(v, key)

  defp validate_option(_, :cgroup_beneath_beam, v) when is_boolean(v), do: v
  defp validate_option(_, :delay_to_sigkill, v) when is_integer(v) and v >= 0, do: v
  defp validate_option(_, key, v) when key in [:uid, :gid], do: validate_id(key, v)
  defp validate_option(_, :groups, v) when is_list(v), do: Enum.map(v, &validate_id(:groups, &1))
  defp validate_option(_, :stdio_window, v) when is_integer(v) and v >= 16, do: v
  defp validate_option(:cmd, :into, v), do: v
  defp validate_option(:cmd, :timeout, v) when (is_integer(v) and v > 0) or v == :infinity, do: v
  defp validate_option(:daemon, :name, v), do: v

  defp validate_option(:daemon, :logger_fun, f) when is_function(f, 1), do: f

  defp validate_option(:daemon, :logger_fun, {m, f, a} = mfa)
       when is_atom(m) and is_atom(f) and is_list(a),
       do: mfa

  defp validate_option(:daemon, :logger_fun, {m, f} = mf) when is_atom(m) and is_atom(f), do: mf
  defp validate_option(:daemon, :log_output, v) when v in @log_levels, do: v
  defp validate_option(:daemon, :log_prefix, v) when is_binary(v), do: v
  defp validate_option(:daemon, :log_transform, f) when is_function(f, 1), do: f
  defp validate_option(:daemon, :logger_metadata, v) when is_list(v), do: v
  defp validate_option(:daemon, :exit_status_to_reason, f) when is_function(f, 1), do: f
  defp validate_option(:daemon, :wait_for, f) when is_function(f, 0), do: f

  defp validate_option(_context, key, value) do
    raise ArgumentError, "invalid value for option #{inspect(key)}: #{inspect(value)}"
  end

  defp validate_env(env) when is_list(env) or is_map(env) do
    Enum.map(env, fn
      {k, v} when is_binary(k) and (is_binary(v) or is_nil(v)) ->
        if String.contains?(k, ["=", <<0>>]) or (is_binary(v) and String.contains?(v, <<0>>)) do
          raise ArgumentError, "invalid environment variable #{inspect(k)}=#{inspect(v)}"
        end

        {k, v}

      other ->
        raise ArgumentError,
              "invalid environment key-value #{inspect(other)}, expected binary names and binary or nil values"
    end)
  end

  defp validate_env(other) do
    raise ArgumentError, "invalid value for option :env: #{inspect(other)}"
  end

  # Names are resolved by the port binary; 0 is refused here so no launch
  # is ever attempted with root privileges.
  defp validate_id(key, 0) do
    raise ArgumentError, "#{inspect(key)}: 0 (root) is refused, MuonTrap only drops privileges"
  end

  defp validate_id(_key, v) when is_integer(v) and v > 0, do: v

  defp validate_id(key, v) when is_binary(v) do
    if v != "" and v =~ ~r/\A[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?\z/ do
      v
    else
      raise ArgumentError, "invalid value in #{inspect(key)}: #{inspect(v)}"
    end
  end

  defp validate_id(key, v) do
    raise ArgumentError,
          "invalid value in #{inspect(key)}: #{inspect(v)}, expected a positive integer or a name"
  end

  defp resolve_cgroup(%{cgroup_base: _, cgroup_path: _}) do
    raise ArgumentError, "use either :cgroup_base or :cgroup_path, not both"
  end

  defp resolve_cgroup(%{cgroup_base: base} = options) do
    options |> Map.delete(:cgroup_base) |> Map.put(:cgroup_path, Cgroup.random_path(base))
  end

  defp resolve_cgroup(%{cgroup: settings} = options)
       when not is_map_key(options, :cgroup_path) and map_size(settings) > 0 do
    raise ArgumentError, "the :cgroup settings need a :cgroup_path or :cgroup_base to apply to"
  end

  defp resolve_cgroup(options), do: options

  defp check_exclusive(options, a, b) do
    if options[a] && options[b] do
      raise ArgumentError, "#{inspect(a)} and #{inspect(b)} cannot both be true"
    end

    options
  end
end
