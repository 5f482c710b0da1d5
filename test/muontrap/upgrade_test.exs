defmodule MuonTrap.UpgradeTest do
  # A code upgrade of MuonTrap.Nif in a child BEAM (docs/protocol.md,
  # "Hot code upgrade"), the new release being a copy of this build's
  # application in a directory of its own, as a release lays it out. A hot
  # load over the old code takes over the running commands when the new
  # library holds their state in the same layout; otherwise it warns and
  # they stop at their owner's next call. Either way the old spawner
  # retires and the next start runs the new release's.
  use ExUnit.Case, async: true

  import MuonTrap.Test.{Faults, OSProcess}

  @moduletag timeout: 300_000

  # Starts, in the child BEAM, a Daemon reading lines from its stdin under
  # a supervisor, and a cmd/3 waiting for a gate file; then copies the
  # application to the new release's directory (`patch` changes the copy's
  # library) and loads its MuonTrap.Nif over the old code. Prints what
  # happened, then stops everything at a line on stdin.
  defp hot_upgrade_script(m, dir, patch) do
    """
    defmodule Catch do
      def log(%{msg: {:string, s}}, %{config: %{to: pid}}), do: send(pid, {:log, IO.chardata_to_string(s)})
      def log(_, _), do: :ok
    end
    :ok = :logger.add_handler(:catch, Catch, %{config: %{to: self()}})
    {:ok, _} = Application.ensure_all_started(:muontrap)
    m = #{inspect(m)}
    gate = Path.join(System.tmp_dir!(), "muontrap_gate_" <> m)
    me = self()
    daemon = {MuonTrap.Daemon, ["sh", ["-c", "echo up; while read l; do echo got $l; done; : " <> m],
      [stdin: :pipe, logger_fun: &send(me, {:line, &1})]]}
    # A second one with a listening socket, relaunched when its command exits.
    {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    listener = Supervisor.child_spec({MuonTrap.Daemon, ["sh", ["-c", "echo fds $LISTEN_FDS; read x; exit 3; : " <> m],
      [stdin: :pipe, listen_sockets: [l], relaunch: [retries: 3, delay: 10], logger_fun: &send(me, {:line2, &1})]]}, id: :listener)
    {:ok, sup} = Supervisor.start_link([daemon, listener], strategy: :one_for_one)
    child = fn id -> Enum.find_value(Supervisor.which_children(sup), fn {i, d, _, _} -> i == id && d end) end
    daemon_pid = fn -> child.(MuonTrap.Daemon) end
    line = fn -> receive do {:line, l} -> l after 30_000 -> "none" end end
    line2 = fn -> receive do {:line2, l} -> l after 30_000 -> "none" end end
    IO.puts("daemon " <> line.() <> " " <> inspect(MuonTrap.Daemon.os_pid(daemon_pid.())))
    "fds 1" = line2.()
    listening = child.(:listener)
    old = MuonTrap.Nif.spawner_pid()
    IO.puts("old spawner \#{old}")
    spawn(fn ->
      result =
        try do
          MuonTrap.cmd("sh", ["-c", "while [ ! -e " <> gate <> " ]; do sleep 0.02; done; echo crossed; : " <> m])
        rescue
          e -> {:raised, e.__struct__}
        end
      send(me, {:cmd, result})
    end)
    true = Enum.any?(1..6000, fn _ -> Process.sleep(10); match?({_, 0}, System.cmd("pgrep", ["-f", "crossed; : " <> m])) end)
    # Commands starting all through the upgrade, each checking its output.
    storm = for i <- 1..8 do
      spawn(fn ->
        run = fn run, acc ->
          receive do
            :stop -> send(me, {:storm, acc})
          after 0 ->
            r = try do
                  if MuonTrap.cmd("echo", [m <> ".\#{i}"]) == {m <> ".\#{i}\n", 0}, do: :ok, else: :wrong
                rescue
                  _ -> :error
                end
            run.(run, Map.update(acc, r, 1, &(&1 + 1)))
          end
        end
        run.(run, %{})
      end)
    end
    Process.sleep(200)
    dir = #{inspect(dir)}
    File.mkdir_p!(Path.dirname(dir))
    {:ok, _} = File.cp_r(:code.lib_dir(:muontrap), dir)
    so = Path.join([dir, "priv", "libmuontrap_nif.so"])
    patch = #{inspect(patch)}
    for {from, to} <- patch, do: File.write!(so, :binary.replace(File.read!(so), from, to, [:global]))
    true = :code.replace_path(:muontrap, String.to_charlist(Path.join(dir, "ebin")))
    IO.puts("loaded " <> inspect(:code.load_file(MuonTrap.Nif)) <> " " <> inspect(MuonTrap.Nif.loaded_as()))
    receive do {:log, l} -> IO.puts("warned " <> l) after 1_000 -> IO.puts("warned none") end
    File.write!(gate, "")
    receive do {:cmd, r} -> IO.puts("cmd " <> inspect(r)) after 30_000 -> IO.puts("cmd none") end
    Process.sleep(200)
    for pid <- storm, do: send(pid, :stop)
    storms = for _ <- storm, do: receive(do: ({:storm, acc} -> acc))
    IO.puts("storm " <> inspect(Enum.reduce(storms, %{}, &Map.merge(&1, &2, fn _, a, b -> a + b end))))
    written = try do MuonTrap.Daemon.write(daemon_pid.(), "two\\n") catch :exit, _ -> :exit end
    IO.puts("write " <> inspect(written) <> " " <> line.())
    IO.puts("daemon now " <> inspect(MuonTrap.Daemon.os_pid(daemon_pid.())))
    # Its command exits; the relaunch hands the same listener over again.
    written = try do MuonTrap.Daemon.write(listening, "x\n") catch :exit, _ -> :exit end
    IO.puts("relaunched " <> inspect(written) <> " " <> line2.() <> " " <> inspect(child.(:listener) == listening))
    IO.puts("new cmd " <> inspect(MuonTrap.cmd("echo", [m])))
    new = MuonTrap.Nif.spawner_pid()
    IO.puts("new spawner \#{new} \#{File.read_link!("/proc/\#{new}/exe")}")
    IO.gets("")
    File.rm(gate)
    Supervisor.stop(sup)
    IO.puts("stopped")
    Process.sleep(:infinity)
    """
  end

  # The new release's directory for marker `m`, removed after the test;
  # named as a release lays it out (replace_path wants the application's
  # name).
  defp release_dir(m) do
    releases = Path.join(System.tmp_dir!(), "muontrap_upgrade_#{m}")
    on_exit(fn -> File.rm_rf(releases) end)
    Path.join(releases, "muontrap-99.0.0")
  end

  # How the storm's commands ended: %{ok: n, wrong: n, error: n}.
  defp storm(said), do: said["storm"] |> Code.eval_string() |> elem(0)

  # Runs the hot upgrade; returns what the child printed after the load.
  defp hot_upgrade(patch) do
    m = fault_marker()
    dir = release_dir(m)
    {port, beam} = start_child_beam(hot_upgrade_script(m, dir, patch))
    ["up", daemon] = String.split(child_line(port, "daemon ", 60_000), " ")
    old = String.to_integer(child_line(port, "old spawner ", 60_000))

    said =
      for key <-
            ~w(loaded warned cmd storm write) ++
              ["daemon now", "relaunched", "new cmd", "new spawner"],
          into: %{},
          do: {key, child_line(port, key <> " ", 60_000)}

    assert said["new cmd"] == inspect({m <> "\n", 0})
    [new, exe] = String.split(said["new spawner"], " ")
    assert exe == Path.join([dir, "priv", "muontrap"])
    assert String.to_integer(new) != old
    # The old library's spawner retired; its commands did not depend on it.
    wait_all_dead([old], 15_000)
    Port.command(port, "\n")
    assert child_line(port, "stopped", 60_000) == ""
    assert_nothing_left(m)
    signal(beam, "KILL")
    wait_all_dead([beam, String.to_integer(new)], 15_000)
    Map.put(said, "daemon before", daemon)
  end

  test "a hot load over the old code takes over the running commands" do
    said = hot_upgrade([])
    assert said["loaded"] == "{:module, MuonTrap.Nif} :takeover"
    assert said["warned"] == "none"
    # The command started before the upgrade ended normally, read by the
    # new library; the Daemon's command took a line and answered.
    assert said["cmd"] == inspect({"crossed\n", 0})
    # Commands started before, during and after the load all ran right.
    assert %{ok: ok} = storm = storm(said)
    assert Map.keys(storm) == [:ok] and ok > 0
    assert said["write"] == ":ok got two"
    assert said["daemon now"] == said["daemon before"]
    # The daemon with a listener relaunched its command with it: the new
    # library read the old one's listeners.
    assert said["relaunched"] == ":ok fds 1 true"
  end

  test "a hot load of a library with another state layout warns, and the old commands stop" do
    # The copy's resource types get other names (src/object.rs, type_name).
    said = hot_upgrade([{"/layout ", "/lAyout "}])
    assert said["loaded"] == "{:module, MuonTrap.Nif} :no_takeover"
    assert said["warned"] =~ "cannot take over the commands started before"
    assert said["cmd"] == inspect({:raised, ArgumentError})
    # A command in flight at the load may fail; none gets another's output.
    assert %{ok: ok} = storm = storm(said)
    assert ok > 0 and not Map.has_key?(storm, :wrong)
    # The Daemon crashed at the write; its supervisor restarted it, with a
    # command started by the new library.
    assert said["write"] == ":exit up"
    assert said["daemon now"] != said["daemon before"]
    # The same for the daemon with a listener: a new daemon took new ones.
    assert said["relaunched"] == ":exit fds 1 false"
  end

  describe "a reload after the old code is deleted and purged" do
    test "retires the old spawner; the new library starts its own from its own directory" do
      m = fault_marker()
      upgrade_dir = release_dir(m)

      # Loaded as release_handler's delete_module + add_module would: the
      # old library's types are orphaned, so nothing takes them over.
      script = """
      {:ok, _} = Application.ensure_all_started(:muontrap)
      old = MuonTrap.Nif.spawner_pid()
      IO.puts("old spawner \#{old}")
      caller = spawn(fn -> receive do: (:go -> MuonTrap.cmd(#{inspect(helper())}, ["sleep", #{inspect(m)}])) end)
      # The caller reads its channel once, at cmd/3's lazy arm: after the
      # reload that read would find its stdio foreign (ArgumentError) and
      # the command would stop with it, so the reload waits for it.
      1 = :erlang.trace(caller, true, [:call])
      _ = :erlang.trace_pattern({MuonTrap.Nif, :stdio_recv, 2}, true, [:local])
      send(caller, :go)
      receive do
        {:trace, ^caller, :call, {MuonTrap.Nif, :stdio_recv, _}} -> :ok
      after
        60_000 -> raise "the caller never read its channel"
      end
      1 = :erlang.trace(caller, false, [:call])
      true = Enum.any?(1..6000, fn _ -> Process.sleep(10); match?({_, 0}, System.cmd("pgrep", ["-f", #{inspect(m)}])) end)
      dir = #{inspect(upgrade_dir)}
      File.mkdir_p!(Path.dirname(dir))
      {:ok, _} = File.cp_r(:code.lib_dir(:muontrap), dir)
      true = :code.replace_path(:muontrap, String.to_charlist(Path.join(dir, "ebin")))
      true = :code.delete(MuonTrap.Nif)
      _ = :code.purge(MuonTrap.Nif)
      IO.puts("reloaded " <> inspect(:code.load_file(MuonTrap.Nif)))
      IO.puts("cmd " <> inspect(MuonTrap.cmd("echo", [#{inspect(m)}])))
      new = MuonTrap.Nif.spawner_pid()
      IO.puts("new spawner \#{new} \#{File.read_link!("/proc/\#{new}/exe")}")
      IO.gets("")
      # The old library's command dies with its owner, as any command.
      Process.exit(caller, :kill)
      Process.sleep(:infinity)
      """

      {port, beam} = start_child_beam(script)
      old = String.to_integer(child_line(port, "old spawner ", 60_000))
      assert child_line(port, "reloaded ", 60_000) == inspect({:module, MuonTrap.Nif})
      assert child_line(port, "cmd ", 60_000) == inspect({"#{m}\n", 0})
      [new, exe] = String.split(child_line(port, "new spawner ", 60_000), " ")
      assert String.to_integer(new) != old
      # The command started under the old library runs on.
      assert [_] = pids_matching(m)
      Port.command(port, "\n")
      wait_until(fn -> pids_matching(m) == [] end, 15_000, "the old library's command to stop")
      assert exe == Path.join([upgrade_dir, "priv", "muontrap"])
      # The old library's instance, replaced in :persistent_term, let go
      # of its spawner: it read EOF and exited.
      wait_all_dead([old], 15_000)
      signal(beam, "KILL")
      wait_all_dead([beam, String.to_integer(new)], 15_000)
    end
  end
end
