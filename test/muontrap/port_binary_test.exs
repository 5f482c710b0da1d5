defmodule MuonTrap.PortBinaryTest do
  use ExUnit.Case, async: true

  import MuonTrap.Test.OSProcess

  alias MuonTrap.{Daemon, PortBinary}

  test "MuonTrap.Port, the module's name before its release, is gone" do
    refute Code.ensure_loaded?(MuonTrap.Port)
  end

  # What a supervisor's command line may hold: it is a fork of the
  # spawner, `muontrap --spawner`. The options go to the NIF and reach the
  # supervisor with the descriptors.
  defp assert_no_option(os_pid) do
    cmdline = File.read!("/proc/#{os_pid}/cmdline")
    assert ["muontrap", "--spawner", ""] = String.split(cmdline, <<0>>)
    assert File.read_link!("/proc/#{os_pid}/exe") == PortBinary.path()
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

  test "cmd/3's supervisor holds no option on its command line" do
    caller = self()

    task =
      Task.async(fn ->
        send(caller, {:running, self()})
        MuonTrap.cmd("sleep", ["1"], delay_to_sigkill: 123, umask: 0o22, nice: 5)
      end)

    assert_receive {:running, _pid}

    # The supervisor: the spawner's child whose child is a `sleep 1`.
    spawner = MuonTrap.Nif.spawner_pid() || wait_until(&MuonTrap.Nif.spawner_pid/0)

    os_pid =
      wait_until(fn ->
        "/proc/#{spawner}/task/#{spawner}/children"
        |> File.read!()
        |> String.split()
        |> Enum.find(fn sup ->
          match?({:ok, "sleep\0" <> "1\0"}, child_cmdline(sup))
        end)
      end)

    assert_no_option(os_pid)
    assert program_attrs(os_pid) == {0o22, 5}
    assert Task.await(task) == {"", 0}
  end

  test "a daemon's supervisor holds no option on its command line" do
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

  # The command value rides in the HANDOVER frame up to 32 KiB encoded
  # (MAX_INLINE in native/muontrap_wire), in a COMMAND memfd beyond: both
  # hand the program exactly its arguments and environment. (The memfd
  # also carries the argument lists up to ARG_MAX of hostile_input_test.)
  for {path, size} <- [frame: 20_000, memfd: 100_000] do
    test "a command handed over in the #{path} gets its arguments and environment exactly" do
      size = unquote(size)
      args = for i <- 1..10, do: "#{i}:" <> :binary.copy("a", div(size, 20))
      value = :binary.copy("v", div(size, 2))
      script = ~S(printf '%s\n' "$@"; printf '%s' "$MT_BIG")

      assert {out, 0} = MuonTrap.cmd("sh", ["-c", script, "sh" | args], env: [{"MT_BIG", value}])
      assert out == Enum.map_join(args, &(&1 <> "\n")) <> value
    end
  end

  defp child_cmdline(sup) do
    with {:ok, text} <- File.read("/proc/#{sup}/task/#{sup}/children"),
         [child] <- String.split(text),
         do: File.read("/proc/#{child}/cmdline"),
         else: (_ -> nil)
  end
end
