defmodule MuonTrap.PortBinaryTest do
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.{Daemon, Options, PortBinary, Protocol}

  test "a port opened by open/3 runs the command; close/1 leaves no message behind" do
    port = PortBinary.open(Options.validate(:cmd, "true", [], []), :none)
    assert exit_frame(port) == {:exit, 0}
    assert PortBinary.close(port) == :ok
    assert PortBinary.close(nil) == :ok
    refute_received {^port, _}
  end

  test "MuonTrap.Port, the module's name before its release, is gone" do
    refute Code.ensure_loaded?(MuonTrap.Port)
  end

  # What the port binary's command line may hold: its path, and the BEAM's
  # socket. The options go to the NIF and reach the port with the descriptors.
  defp assert_no_option(os_pid) do
    cmdline = File.read!("/proc/#{os_pid}/cmdline")
    assert [path, "--beam", name, ""] = String.split(cmdline, <<0>>)
    assert path == PortBinary.path()
    assert name =~ ~r/\Amuontrap-#{System.pid()}-[0-9a-f]{16}\z/
  end

  # The command (the port binary's child): its umask and nice value, which
  # only the handed-over options can have set.
  defp program_attrs(port_os_pid) do
    [child] =
      wait_until(fn ->
        case File.read("/proc/#{port_os_pid}/task/#{port_os_pid}/children") do
          {:ok, text} when text != "" -> exec_done(text)
          _ -> nil
        end
      end)

    status = File.read!("/proc/#{child}/status")
    [_, umask] = Regex.run(~r/^Umask:\s+(\d+)$/m, status)
    [_, rest] = String.split(File.read!("/proc/#{child}/stat"), ") ", parts: 2)
    nice = rest |> String.split(" ") |> Enum.at(16) |> String.to_integer()
    {String.to_integer(umask, 8), nice}
  end

  # The children once the command has exec'd `sleep`: before, the forked
  # child has not set its attributes yet.
  defp exec_done(text) do
    children = text |> String.split() |> Enum.map(&String.to_integer/1)
    if Enum.all?(children, &(File.read("/proc/#{&1}/comm") == {:ok, "sleep\n"})), do: children
  end

  test "cmd/3's port binary holds no option on its command line" do
    caller = self()

    task =
      Task.async(fn ->
        send(caller, {:running, self()})
        MuonTrap.cmd("sleep", ["1"], delay_to_sigkill: 123, umask: 0o22, nice: 5)
      end)

    assert_receive {:running, pid}

    os_pid =
      wait_until(fn ->
        Enum.find_value(Port.list(), fn port ->
          # Owned by the caller's reaper (MuonTrap.PortReaper), linked to it.
          with [_ | _] = info <- Port.info(port),
               owner = info[:connected],
               {:links, links} <- Process.info(owner, :links),
               true <- owner == pid or pid in links,
               os_pid when is_integer(os_pid) and os_pid > 0 <- info[:os_pid],
               {:ok, exe} <- File.read_link("/proc/#{os_pid}/exe"),
               true <- Path.basename(exe) == "muontrap",
               do: os_pid,
               else: (_ -> nil)
        end)
      end)

    assert_no_option(os_pid)
    assert program_attrs(os_pid) == {0o22, 5}
    assert Task.await(task) == {"", 0}
  end

  test "a daemon's port binary holds no option on its command line" do
    # With output pipes, and without any (the hand-over then carries the
    # command alone).
    for {logging, umask} <- [{[log_output: :debug], 0o27}, {[], 0o77}] do
      {:ok, daemon} =
        Daemon.start_link(
          "sleep",
          ["10"],
          [
            delay_to_sigkill: 50,
            umask: umask,
            nice: 3,
            stop_signal: :sigint,
            env: [{"MT_X", "1"}],
            rlimits: [nofile: 100]
          ] ++ logging
        )

      os_pid =
        wait_until(fn -> with(pid when is_integer(pid) <- Daemon.os_pid(daemon), do: pid) end)

      assert_no_option(os_pid)
      assert program_attrs(os_pid) == {umask, 3}
      GenServer.stop(daemon)
    end
  end

  defp exit_frame(port) do
    receive do
      {^port, {:data, frame}} ->
        with {:started, _pid} <- Protocol.decode(frame), do: exit_frame(port)
    after
      5_000 -> flunk("no EXIT frame")
    end
  end
end
