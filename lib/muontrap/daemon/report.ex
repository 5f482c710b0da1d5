defmodule MuonTrap.Daemon.Report do
  @moduledoc false
  # What a daemon's crash report and :sys.get_status/1 show of its state
  # (the GenServer's format_status callbacks): what tells why its command
  # failed, not the pipes, buffers, timers and readiness structs behind
  # it, which made each attempt of a crash-looping daemon log about 1 KB.
  # The options are left out too: :env may hold secrets.

  # Beyond this, the joined arguments are cut (an E2BIG daemon's are huge).
  @max_args_bytes 200

  @doc "The summary of the daemon's `state`."
  @spec summary(term()) :: map() | term()
  def summary(%{command: command, options: %{args: args}} = state) do
    %{
      command: command,
      args: args_text(args),
      state: daemon_state(state),
      os_pid: known(state.os_pid),
      command_os_pid: known(state.command_os_pid),
      last_exit: state.last_exit
    }
    |> put_present(:error, state.error)
    |> put_present(:cgroup_path, state.options[:cgroup_path])
    |> put_present(:relaunch_count, state.relaunch && state.relaunch.count)
  end

  # Never the whole state again: whatever this is, it is no daemon's.
  def summary(_other), do: :unknown

  @doc "The message being handled: a stdin write without its data."
  @spec message(term()) :: term()
  def message({:"$gen_call", from, {:write, data, timeout}}),
    do: {:"$gen_call", from, {:write, {:iodata_bytes, iodata_size(data)}, timeout}}

  def message(message), do: message

  # The command ran and ended (no relaunch waits): :exited, whatever it
  # said about itself before.
  defp daemon_state(%{channel: nil, last_exit: exit, startup: startup}) when exit != nil do
    if startup.readiness.state == :relaunching, do: :relaunching, else: :exited
  end

  defp daemon_state(%{startup: startup}), do: startup.readiness.state

  defp args_text(args) do
    text = Enum.join(args, " ")

    if byte_size(text) > @max_args_bytes,
      do: "#{binary_part(text, 0, @max_args_bytes)}... (#{length(args)} arguments)",
      else: text
  end

  defp known(:error), do: nil
  defp known(pid), do: pid

  defp put_present(map, _key, nil), do: map
  defp put_present(map, key, value), do: Map.put(map, key, value)

  defp iodata_size(data) do
    IO.iodata_length(data)
  rescue
    ArgumentError -> :not_iodata
  end
end
