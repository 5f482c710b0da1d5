defmodule MuonTrap.BuildTest do
  use ExUnit.Case, async: true

  test "the native artifacts are installed in priv" do
    priv = :code.priv_dir(:muontrap)
    assert File.regular?(Path.join(priv, "muontrap"))
    assert File.regular?(Path.join(priv, "libmuontrap_nif.so"))
    assert MuonTrap.muontrap_path() == Path.join(priv, "muontrap")
  end

  test "a second compile with nothing changed does not run cargo" do
    assert Mix.Tasks.Compile.MuontrapNative.run([]) == :noop
  end

  test "the port binary prints its usage with --help" do
    {usage, 0} = System.cmd(MuonTrap.muontrap_path(), ["--help"])
    assert usage =~ "--delay-to-sigkill"
    assert usage =~ "--stdio-window"
  end

  @tag :x86_64_gnu
  test "the running port binary maps no unwinder library (libgcc_s)" do
    # src/no_unwind.rs: the release binary never unwinds, so it should not
    # pay for loading libgcc_s (README, "Performance").
    {:ok, daemon} = MuonTrap.Daemon.start_link("sleep", ["100"])
    # The command has started only once the port binary runs (not before exec).
    MuonTrap.Test.OSProcess.wait_until(fn -> MuonTrap.Daemon.command_os_pid(daemon) != :error end)
    maps = File.read!("/proc/#{MuonTrap.Daemon.os_pid(daemon)}/maps")
    assert maps =~ "libc.so"
    refute maps =~ "libgcc_s"
    GenServer.stop(daemon)
  end

  test "the port binary works by hand in the plain protocol" do
    # A hand-written invocation: raw bytes out, acks in, each ack byte
    # acknowledging its value + 1 bytes. Once all 100_000 bytes are in, the
    # binary may exit at any moment, so no ack is sent after that (it could
    # hit a closed pipe and kill this process with :epipe).
    port =
      Port.open({:spawn_executable, MuonTrap.muontrap_path()}, [
        :binary,
        :exit_status,
        args: ["--capture-output", "--", "sh", "-c", "head -c 100000 /dev/zero"]
      ])

    assert receive_plain(port, 0, 0) == 100_000
  end

  defp receive_plain(port, total, unacked) do
    receive do
      {^port, {:data, data}} ->
        total = total + byte_size(data)
        unacked = unacked + byte_size(data)
        steps = if total < 100_000, do: div(unacked, 256), else: 0
        if steps > 0, do: Port.command(port, :binary.copy(<<255>>, steps))
        receive_plain(port, total, unacked - steps * 256)

      {^port, {:exit_status, 0}} ->
        total
    after
      10_000 -> flunk("no output from the port binary")
    end
  end
end
