defmodule MuonTrap.Test.Notify do
  @moduledoc false
  # sd_notify senders for the readiness and watchdog tests: Python
  # scripts that send datagrams to NOTIFY_SOCKET, as sd_notify(3) does.

  # The interpreter itself, not pyenv's shell-script shim: the shim takes
  # a while to start, on a busy machine longer than a short deadline.
  @python (case System.cmd("python3", ["-c", "import sys; print(sys.executable)"]) do
             {path, 0} -> String.trim(path)
             _ -> "python3"
           end)

  # sd_notify(3) in a few lines ('@' is the abstract namespace). A sender
  # must stay alive until its datagram is read: one that already exited
  # cannot be attributed to the command and is ignored.
  @prelude """
  import os, socket, sys, time
  def notify(msg):
      addr = os.environ["NOTIFY_SOCKET"]
      if addr.startswith("@"):
          addr = "\\0" + addr[1:]
      s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
      s.sendto(msg.encode(), addr)
      s.close()
  def say(line):
      print(line, flush=True)
  """

  @doc """
  `{program, args}` running the Python `script` after the prelude (which
  defines `notify(msg)` and `say(line)`); `marker` is in the command line
  (`sys.argv[1]`) so that a test can find the process. Isolated and
  without `site` (`-I -S`): it starts in a third of the time, which
  counts where a deadline runs from exec.
  """
  def python(script, marker), do: {@python, ["-I", "-S", "-c", @prelude <> script, marker]}

  @doc """
  As `python/2`, with Debian's interpreter: for commands that drop to an
  unprivileged user, who may not read a pyenv under /root.
  """
  def system_python(script, marker),
    do: {"/usr/bin/python3", ["-I", "-S", "-c", @prelude <> script, marker]}
end
