defmodule MuonTrap.HostileInputTest do
  # What a command, or a caller's odd input, can and cannot do: the
  # command sees no descriptor beyond 0, 1, 2 and those asked for, with
  # every feature on; argument lists work up to the kernel's limit and
  # fail with :e2big beyond it; a command dropped to an unprivileged user
  # cannot signal, trace or read the port binary, which keeps its own
  # privileges.
  use ExUnit.Case, async: true

  import MuonTrap.Test.{Notify, OSProcess}

  alias MuonTrap.Daemon

  # The descriptors open in the command, and what each is (the one
  # listdir opens for /proc/self/fd is the highest, left out).
  @fds """
  fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))[:-1]
  kinds = [os.readlink("/proc/self/fd/%d" % fd).split(":")[0] for fd in fds]
  say("fds %s %s" % (fds, kinds))
  """

  defp forward(pid \\ self()), do: {:tagged, fn stream, line -> send(pid, {stream, line}) end}

  defp assert_daemon_fds(extra_opts) do
    {:ok, socket} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
    m = marker()
    script = @fds <> ~s{notify("READY=1")\nnotify("WATCHDOG=1")\nsys.stdin.read()\n}
    {python, args} = system_python(script, m)

    opts = [
      stdin: :pipe,
      log_stderr: :error,
      ready: :notify,
      watchdog: 10_000,
      listen_sockets: [{"web", socket}],
      relaunch: [retries: 1],
      uid: "nobody",
      gid: "nogroup",
      umask: 0o077,
      nice: 5,
      rlimits: %{nofile: {256, 256}},
      stop_signal: :sigint,
      logger_fun: forward()
    ]

    {:ok, daemon} = Daemon.start_link(python, args, opts ++ extra_opts)
    assert_receive {:stdout, "fds " <> fds}, 15_000
    assert fds == "[0, 1, 2, 3] ['pipe', 'pipe', 'pipe', 'socket']"
    GenServer.stop(daemon)
    wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "the command to go")
    :gen_tcp.close(socket)
  end

  @tag :linux
  test "a daemon with every feature on: its command has fds 0-2 and its listener only" do
    assert_daemon_fds([])
  end

  @tag :cgroup
  test "the same in a cgroup with limits" do
    base = Path.join([v2_own_cgroup() || "", "muontrap_test"]) |> String.trim_leading("/")
    assert_daemon_fds(cgroup_base: base, cgroup: %{memory_max: 64 * 1024 * 1024, pids_max: 32})
  end

  test "cmd/3 and stream!/3 with input and a separate stderr: fds 0-2 only" do
    {python, args} = system_python(@fds <> "sys.stdin.read()\n", marker())
    opts = [input: "bytes", uid: "nobody", nice: 3, stdio_window: 4096]
    {out, 0} = MuonTrap.cmd(python, args, opts ++ [stderr_to_stdout: true])
    assert out == "fds [0, 1, 2] ['pipe', 'pipe', 'pipe']\n"

    elements = MuonTrap.stream!(python, args, opts ++ [stderr: :separate]) |> Enum.to_list()
    assert elements == [{:stdout, "fds [0, 1, 2] ['pipe', 'pipe', 'pipe']\n"}]
  end

  # Each variable's bytes, NUL-separated, exactly as the program got them.
  @env_bytes ~S"""
  import os, sys
  names = [b"MT_NL", b"MT_EQ", b"MT_BIN", b"MT_EMPTY", b"HOME"]
  sys.stdout.buffer.write(b"\0".join(os.environb.get(n, b"<unset>") for n in names))
  """

  test "environment values with newlines, = and non-UTF-8 bytes pass through exactly" do
    env = [
      {"MT_NL", "line 1\nline 2\n"},
      {"MT_EQ", "a=b=c"},
      {"MT_BIN", <<0xFF, 0xFE, ?x, 0x80>>},
      {"MT_EMPTY", ""},
      {"HOME", nil}
    ]

    expected =
      Enum.join(["line 1\nline 2\n", "a=b=c", <<0xFF, 0xFE, ?x, 0x80>>, "", "<unset>"], <<0>>)

    assert MuonTrap.cmd("python3", ["-c", @env_bytes], env: env) == {expected, 0}

    # A daemon logs lines: the same bytes in hex, on one.
    test = self()

    hex =
      ~S{sys.stdout.buffer.write(b"\n" + b"\0".join(os.environb.get(n, b"<unset>") for n in names).hex().encode() + b"\n")}

    {:ok, _daemon} =
      Daemon.start_link("python3", ["-c", @env_bytes <> hex],
        env: env,
        logger_fun: fn line -> send(test, {:env, line}) end
      )

    hex_expected = Base.encode16(expected, case: :lower)
    assert_receive {:env, ^hex_expected}, 15_000

    assert_raise ArgumentError, ~r/invalid environment variable/, fn ->
      MuonTrap.cmd("true", [], env: [{"", "x"}])
    end
  end

  # The kernel's limit (ARG_MAX) counts every argument and environment
  # string with its NUL, and a pointer to each. The port binary is exec'd
  # with its own flags, the program and its arguments; the program gets
  # its arguments unchanged.
  defp arg_budget do
    {arg_max, 0} = System.cmd("getconf", ["ARG_MAX"])
    env = System.get_env() |> Enum.map(fn {k, v} -> byte_size(k) + byte_size(v) + 2 + 8 end)
    String.to_integer(String.trim(arg_max)) - Enum.sum(env)
  end

  # Arguments of 100 KiB (the kernel also refuses one longer than
  # 128 KiB, MAX_ARG_STRLEN) adding up to about `total` bytes with their
  # NULs and pointers.
  defp args_of(total) do
    size = 100 * 1024
    n = div(total, size + 1 + 8)
    last = total - n * (size + 1 + 8) - 1 - 8
    List.duplicate(String.duplicate("a", size), n) ++ [String.duplicate("b", max(last, 0))]
  end

  @count_args "import sys; print(len(sys.argv) - 1, sum(len(a) for a in sys.argv[1:]))"

  test "argument lists up to the kernel's limit, less the port's own flags, work; beyond, :e2big" do
    budget = arg_budget()
    python = System.find_executable("python3")
    # The port binary's path, flags and the program's own arguments.
    overhead =
      4096 + byte_size(MuonTrap.PortBinary.path()) + byte_size(python) + byte_size(@count_args)

    args = args_of(budget - overhead)
    {out, 0} = MuonTrap.cmd(python, ["-c", @count_args | args])
    assert out == "#{length(args)} #{args |> Enum.map(&byte_size/1) |> Enum.sum()}\n"

    too_many = args_of(budget + 4096)

    assert_raise ErlangError, ~r/e2big/, fn ->
      MuonTrap.cmd(python, ["-c", @count_args | too_many])
    end

    # One argument over MAX_ARG_STRLEN, however short the whole list.
    assert_raise ErlangError, ~r/e2big/, fn ->
      MuonTrap.cmd("true", [String.duplicate("c", 128 * 1024 + 1)])
    end
  end

  # Run as nobody, the command tries its parent, the port binary.
  @attack """
  import ctypes, errno
  port = os.getppid()
  def attempt(what, f):
      try:
          f()
          say("%s allowed" % what)
      except OSError as e:
          say("%s %s" % (what, errno.errorcode[e.errno]))
  attempt("kill", lambda: os.kill(port, 0))
  attempt("mem", lambda: open("/proc/%d/mem" % port, "rb").read(1))
  attempt("environ", lambda: open("/proc/%d/environ" % port, "rb").read(1))
  libc = ctypes.CDLL(None, use_errno=True)
  def ptrace():
      if libc.ptrace(16, port, None, None) != 0:
          raise OSError(ctypes.get_errno(), "ptrace")
  attempt("ptrace", ptrace)
  say("uid %d" % os.getuid())
  """

  test "a command run as nobody cannot signal, trace or read the port binary" do
    {python, args} = system_python(@attack, marker())
    {out, 0} = MuonTrap.cmd(python, args, uid: "nobody", gid: "nogroup")
    lines = String.split(out, "\n", trim: true)
    assert "kill EPERM" in lines
    assert "mem EACCES" in lines or "mem EPERM" in lines
    assert "environ EACCES" in lines or "environ EPERM" in lines
    assert "ptrace EPERM" in lines
    {nobody, 0} = System.cmd("id", ["-u", "nobody"])
    assert "uid #{String.trim(nobody)}" in lines
  end

  test "the port binary keeps its own privileges while its command runs as nobody" do
    m = marker()
    {:ok, daemon} = Daemon.start_link(helper(), ["sleep", m], uid: "nobody")
    command = command_pid(daemon)
    port = Daemon.os_pid(daemon)
    # Real, effective, saved and filesystem uids.
    uids = fn pid ->
      [_ | ids] =
        Regex.run(~r/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m, File.read!("/proc/#{pid}/status"))

      ids
    end

    assert uids.(port) == ["0", "0", "0", "0"]
    refute "0" in uids.(command)
    GenServer.stop(daemon)
    wait_until(fn -> all_pids_matching(m) == [] end, 5_000, "the command to go")
  end
end
