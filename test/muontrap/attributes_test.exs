defmodule MuonTrap.AttributesTest do
  # :umask, :nice and :rlimits, read back from inside the command, and
  # the refusals an unprivileged caller gets.
  use ExUnit.Case, async: true

  import Bitwise
  import MuonTrap.Test.OSProcess

  alias MuonTrap.Daemon

  # /proc/self/limits of the command, as %{"Max open files" => {soft, hard}}.
  defp limits(opts) do
    {text, 0} = MuonTrap.cmd("cat", ["/proc/self/limits"], opts)

    for line <- tl(String.split(text, "\n", trim: true)),
        [name, soft, hard] <- [
          Regex.run(~r/^(Max .+?)\s{2,}(\S+)\s+(\S+)/, line, capture: :all_but_first)
        ],
        into: %{},
        do: {name, {value(soft), value(hard)}}
  end

  defp value("unlimited"), do: :infinity
  defp value(n), do: String.to_integer(n)

  test "umask" do
    assert {"0077\n", 0} = MuonTrap.cmd("sh", ["-c", "umask"], umask: 0o077)
    assert {"0027\n", 0} = MuonTrap.cmd("sh", ["-c", "umask"], umask: 0o027)
  end

  test "nice is absolute, and read back from /proc/self/stat" do
    nice = fn opts ->
      {stat, 0} = MuonTrap.cmd("cat", ["/proc/self/stat"], opts)
      [_, rest] = String.split(stat, ") ", parts: 2)
      String.to_integer(Enum.at(String.split(rest), 16))
    end

    assert nice.(nice: 5) == 5
    assert nice.(nice: 19) == 19
    assert nice.([]) == 0
  end

  test "every rlimit form, in the resource's own unit" do
    got =
      limits(
        rlimits: [
          nofile: 1024,
          core: {0, :infinity},
          stack: {8_388_608, :infinity},
          cpu: :infinity,
          fsize: {1_048_576, 2_097_152},
          data: {1 <<< 30, :infinity},
          as: {4 <<< 30, :infinity},
          nproc: {500, 1000}
        ]
      )

    assert got["Max open files"] == {1024, 1024}
    assert got["Max core file size"] == {0, :infinity}
    assert got["Max stack size"] == {8_388_608, :infinity}
    assert got["Max cpu time"] == {:infinity, :infinity}
    assert got["Max file size"] == {1_048_576, 2_097_152}
    assert got["Max data size"] == {1 <<< 30, :infinity}
    assert got["Max address space"] == {4 <<< 30, :infinity}
    assert got["Max processes"] == {500, 1000}
  end

  test "a daemon gets them too" do
    m = marker()
    test = self()

    {:ok, pid} =
      Daemon.start_link("sh", ["-c", "umask; ulimit -n; exec sleep 1000 # #{m}"],
        umask: 0o007,
        rlimits: %{nofile: 256},
        logger_fun: fn line -> send(test, {:line, line}) end,
        ready: {:output, "256"}
      )

    assert_received {:line, "0007"}
    assert_received {:line, "256"}
    os = Daemon.os_pid(pid)
    GenServer.stop(pid)
    wait_all_dead([os])
  end

  test "a hard limit above what the kernel allows is a MuonTrap.Error naming it" do
    {nr_open, ""} = Integer.parse(String.trim(File.read!("/proc/sys/fs/nr_open")))
    n = nr_open + 1

    assert_raise MuonTrap.Error, ~r/failed to set rlimit nofile to #{n}:#{n}: /, fn ->
      MuonTrap.cmd("true", [], rlimits: [nofile: n])
    end
  end

  test "as an unprivileged user (:uid), raising a hard limit or lowering nice is refused" do
    # The attributes are applied before the privilege drop, so what the
    # BEAM may do decides; an unprivileged port binary is refused both.
    port = MuonTrap.muontrap_path()
    as_nobody = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", port]

    {out, 1} =
      System.cmd("setpriv", as_nobody ++ ["--nice", "-5", "--", "true"], stderr_to_stdout: true)

    assert out =~ "failed to set nice value -5: Permission denied"

    {out, 1} =
      System.cmd(
        "sh",
        [
          "-c",
          "ulimit -n 512; exec setpriv #{Enum.join(as_nobody, " ")} --rlimit nofile=1024 -- true"
        ],
        stderr_to_stdout: true
      )

    assert out =~ "failed to set rlimit nofile to 1024:1024: Operation not permitted"

    # Through cmd/3 as a :uid user, a BEAM without CAP_SYS_NICE is refused
    # likewise; with it (root here), the value is set before the drop.
    {stat, 0} = MuonTrap.cmd("cat", ["/proc/self/stat"], uid: "nobody", gid: "nogroup", nice: 3)
    assert stat =~ ~r/^\d+ \(cat\) /
  end

  test "bad values are ArgumentErrors naming the option" do
    for {key, value} <- [
          umask: 0o1000,
          umask: -1,
          nice: 20,
          nice: -21,
          rlimits: [nofile: -1],
          rlimits: [nofiles: 10],
          rlimits: [nofile: {10, 5}],
          rlimits: [nofile: {:infinity, 5}],
          rlimits: :nofile,
          stop_signal: :sigfoo
        ] do
      assert_raise ArgumentError, ~r/#{key}|unknown signal/, fn ->
        MuonTrap.cmd("true", [], [{key, value}])
      end
    end
  end
end
