defmodule MuonTrap.StdioDescriptorsTest do
  # MuonTrap.Stdio.close/1 closes every descriptor of the BEAM's side, also
  # when no supervisor ever took them. Not async: it watches the BEAM's
  # own descriptor table.
  use ExUnit.Case, async: false

  alias MuonTrap.Stdio

  # The BEAM's descriptors: number => what it refers to ("pipe:[...]").
  defp open_fds do
    for fd <- File.ls!("/proc/self/fd"),
        {:ok, target} <- [File.read_link("/proc/self/fd/" <> fd)],
        into: %{},
        do: {fd, target}
  end

  defp created_since(before) do
    for {fd, target} <- open_fds(),
        before[fd] != target,
        String.starts_with?(target, ["pipe:", "socket:"]),
        into: %{},
        do: {fd, target}
  end

  # Those of `fds` still open; a stop callback the BEAM scheduled may
  # close its descriptor a moment after Stdio.close/1 returns.
  defp still_open(fds, tries \\ 100) do
    now = open_fds()
    left = Enum.filter(fds, fn {fd, target} -> now[fd] == target end)

    if left != [] and tries > 0 do
      Process.sleep(10)
      still_open(fds, tries - 1)
    else
      left
    end
  end

  test "a stdio that was never selected or started closes its descriptors" do
    before = open_fds()
    stdio = Stdio.open(4096, [:output, :stderr, :stdin])
    # Both ends of three pipes.
    created = created_since(before)
    assert map_size(created) == 6
    Stdio.close(stdio)
    assert still_open(created) == []
  end

  test "a started stdio whose channel was selected closes its descriptors" do
    options = MuonTrap.Options.validate(:cmd, "sleep", ["10"], [])
    # The spawner's request socket, opened once per BEAM, is no stdio's.
    _ = MuonTrap.cmd("true", [])
    before = open_fds()
    stdio = MuonTrap.PortBinary.start(Stdio.open(4096, [:output]), options, :output)
    # Our ends of the pipe and of the channel (theirs went to the supervisor).
    created = created_since(before)
    assert map_size(created) == 2
    # The channel is selected: only the stop callback may close it then.
    assert {_frames, :wait} = Stdio.recv(stdio)
    Stdio.close(stdio)
    assert still_open(created) == []
  end
end
