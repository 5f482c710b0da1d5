defmodule MuonTrap.Application do
  @moduledoc false
  # Warms MuonTrap up at boot. In interactive mode (`mix test`,
  # `iex -S mix`) a module is loaded at its first call, so the first
  # cmd/3 or Daemon would load about 18 modules one by one and start the
  # resident spawner: tens of milliseconds on a test's budget. Here they
  # load in parallel, and the spawner and the end notices' dispatcher
  # start, before anyone waits.
  #
  # Nothing here is needed: cmd/3 works without this application (the
  # first start then starts the spawner), and stopping it leaves running
  # commands and the spawner alone.

  use Application

  require Logger

  @hot_modules [
    MuonTrap,
    MuonTrap.Options,
    MuonTrap.Bytes,
    MuonTrap.Input,
    MuonTrap.Run,
    MuonTrap.Engine,
    MuonTrap.Stdio,
    MuonTrap.Nif,
    MuonTrap.PortBinary,
    MuonTrap.PortReaper,
    MuonTrap.Notices,
    MuonTrap.Protocol,
    MuonTrap.Daemon,
    MuonTrap.Daemon.Server,
    MuonTrap.Daemon.Pipes,
    MuonTrap.Daemon.Output,
    MuonTrap.Daemon.Readiness,
    MuonTrap.Daemon.Relaunch,
    MuonTrap.Daemon.Signals,
    MuonTrap.Daemon.Startup,
    # What an error message needs: out of descriptors, no module loads.
    MuonTrap.Error,
    String.Chars.List,
    :erl_posix_msg
  ]

  @impl Application
  def start(_type, _args) do
    _ = :code.ensure_modules_loaded(@hot_modules)

    case MuonTrap.Nif.spawner_start(MuonTrap.PortBinary.path()) do
      {:ok, _pid} -> :ok
      # Said again, as an error, by the first command.
      {:error, message} -> Logger.warning("#{message} (at the application's start)")
    end

    MuonTrap.Notices.ensure()

    Supervisor.start_link([], strategy: :one_for_one, name: MuonTrap.Supervisor)
  end
end
