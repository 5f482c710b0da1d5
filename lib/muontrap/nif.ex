defmodule MuonTrap.Nif do
  @moduledoc false
  # Cgroup file access in Rust (native/muontrap_nif). Each cgroup function
  # takes a cgroup path relative to each hierarchy's root (or, when
  # beneath_own_cgroup is true, to the BEAM's own cgroup in it), or nil when there
  # is no cgroup; see the crate's docs for which run on dirty schedulers.
  @on_load :load

  require Logger

  @doc false
  def load do
    priv = :code.priv_dir(:muontrap)

    with :ok <- :erlang.load_nif(String.to_charlist(Path.join(priv, "libmuontrap_nif")), 0) do
      # A hot upgrade takes over running commands only when their state's
      # layout is the same (native/muontrap_nif/src/object.rs, type_name).
      if loaded_as() == :no_takeover do
        Logger.warning(
          "MuonTrap upgraded to a library that cannot take over the commands " <>
            "started before (another state layout, transport version or compiler): " <>
            "each one stops at its owner's next call into MuonTrap, which raises ArgumentError"
        )
      end

      # This load's instance replaces an earlier load's, whose spawner
      # then exits (native/muontrap_nif/src/spawner.rs, Instance); the
      # port binary is the one beside this library.
      instance = {spawner_instance(), Path.join(priv, "muontrap")}
      :persistent_term.put({__MODULE__, :instance}, instance)
    end
  end

  @doc false
  # The port binary beside the loaded library (cached: :code.priv_dir/1
  # is a call to the code server).
  def port_binary_path, do: elem(:persistent_term.get({__MODULE__, :instance}), 1)

  def loaded_as, do: :erlang.nif_error(:nif_not_loaded)
  def cgget(_path, _beneath_own_cgroup, _file), do: :erlang.nif_error(:nif_not_loaded)
  def cgset(_path, _beneath_own_cgroup, _file, _value), do: :erlang.nif_error(:nif_not_loaded)

  def cgroup_config(_path, _beneath_own_cgroup, _open_files),
    do: :erlang.nif_error(:nif_not_loaded)

  def statistics(_path, _beneath_own_cgroup, _open_files), do: :erlang.nif_error(:nif_not_loaded)
  def open_files, do: :erlang.nif_error(:nif_not_loaded)
  def cleanup(_path, _beneath_own_cgroup), do: :erlang.nif_error(:nif_not_loaded)
  def layout, do: :erlang.nif_error(:nif_not_loaded)

  # What the library and the supervisor agree on (native/muontrap_wire through
  # native/muontrap_nif/src/wire.rs): frames for MuonTrap.Protocol, the signal
  # and rlimit tables and defaults (constants/0, fetched once: see constants/0
  # below), cgroup path checks. Normal scheduler, microseconds.
  def frame_decode(_frame), do: :erlang.nif_error(:nif_not_loaded)
  def frame_terminate, do: :erlang.nif_error(:nif_not_loaded)
  def frame_signal(_number), do: :erlang.nif_error(:nif_not_loaded)
  def cgroup_path_check(_path), do: :erlang.nif_error(:nif_not_loaded)

  # os:find_executable/2 in one dirty IO call (native/muontrap_nif/src/executable.rs).
  def find_executable(_name, _path), do: :erlang.nif_error(:nif_not_loaded)
  # The BEAM's PATH is set and has only absolute entries (executable.rs).
  def path_all_absolute, do: :erlang.nif_error(:nif_not_loaded)

  @doc false
  # The NIF's tables, kept in :persistent_term after the first call: a
  # module attribute cannot hold them, as the NIF loads at run time.
  def constants do
    case :persistent_term.get({__MODULE__, :constants}, nil) do
      nil ->
        constants = nif_constants()
        :persistent_term.put({__MODULE__, :constants}, constants)
        constants

      constants ->
        constants
    end
  end

  # native/muontrap_nif/src/wire.rs, uncached.
  def nif_constants, do: :erlang.nif_error(:nif_not_loaded)

  # The :cgroup option's table (native/muontrap_nif/src/settings.rs), used by MuonTrap.Cgroup.
  def cgroup_writes(_sorted_settings, _v1_controllers), do: :erlang.nif_error(:nif_not_loaded)
  def cgroup_keys(_v1_only), do: :erlang.nif_error(:nif_not_loaded)

  # A command's BEAM-owned stdio (native/muontrap_nif/src/stdio.rs), used by MuonTrap.Stdio.
  def stdio_open(_window, _streams, _listeners), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_command(_stdio, _command), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_spawn(_stdio), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_hand_over(_stdio, _arm, _notice), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_recv(_stdio, _select_ref), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_send(_stdio, _frame), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_info(_stdio), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_close_channel(_stdio), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_heir(_stdio, _pid), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_give(_stdio, _pid), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_kill(_stdio, _what), do: :erlang.nif_error(:nif_not_loaded)

  # End notices (native/muontrap_nif/src/notices.rs), used by MuonTrap.Notices.
  def notices_attach, do: :erlang.nif_error(:nif_not_loaded)
  def notices_dispatch(_bytes), do: :erlang.nif_error(:nif_not_loaded)

  # The resident spawner (native/muontrap_nif/src/spawner.rs).
  def spawner_instance, do: :erlang.nif_error(:nif_not_loaded)
  def spawner_pid, do: :erlang.nif_error(:nif_not_loaded)
  def spawner_start(_path), do: :erlang.nif_error(:nif_not_loaded)
  def spawner_stop, do: :erlang.nif_error(:nif_not_loaded)
  def stdio_read(_stdio, _stream, _max, _select_ref), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_write(_stdio, _data, _select_ref), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_close_stdin(_stdio), do: :erlang.nif_error(:nif_not_loaded)
  def stdio_close(_stdio), do: :erlang.nif_error(:nif_not_loaded)

  # A daemon's listening sockets (native/muontrap_nif/src/listeners.rs),
  # used by MuonTrap.Daemon.Listeners.
  def listeners_check(_fds), do: :erlang.nif_error(:nif_not_loaded)
  def listeners_take(_fds), do: :erlang.nif_error(:nif_not_loaded)
end
