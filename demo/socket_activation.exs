# Socket activation and relaunch: the BEAM listens on a TCP port; a Python
# server takes the listener as fd 3 (socket.fromfd, as under systemd),
# serves one client and exits with status 1, and the daemon relaunches it.
# Five clients in a row, one right after another, are all served, each by a
# new process. Run with: mix run demo/socket_activation.exs

server = """
import os, select, socket, sys
s = socket.fromfd(3, socket.AF_INET, socket.SOCK_STREAM)
select.select([s], [], [])
c, _ = s.accept()
c.sendall(("served by pid %s (LISTEN_FDNAMES=%s)\\n" % (os.getpid(), os.environ["LISTEN_FDNAMES"])).encode())
sys.exit(1)
"""

{:ok, socket} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
{:ok, port} = :inet.port(socket)
IO.puts("the BEAM listens on 127.0.0.1:#{port}")

# The daemon logs each exit and relaunch; the clients tell the story here.
Logger.configure(level: :critical)

{:ok, daemon} =
  MuonTrap.Daemon.start_link("python3", ["-c", server],
    listen_sockets: [{"demo", socket}],
    relaunch: [retries: 10, delay: 100, max_delay: 400]
  )

for i <- 1..5 do
  {:ok, c} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false, packet: :line])
  {:ok, line} = :gen_tcp.recv(c, 0, 10_000)
  IO.write("client #{i}: #{line}")
  :gen_tcp.close(c)
end

IO.puts("relaunches so far: #{MuonTrap.Daemon.statistics(daemon).relaunch_count}")
GenServer.stop(daemon)
