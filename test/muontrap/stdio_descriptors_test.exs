defmodule MuonTrap.StdioDescriptorsTest do
  # MuonTrap.Stdio.close/1 closes every descriptor of the BEAM's side, also
  # when no port binary ever took them. Not async: it watches the BEAM's
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

  test "a stdio that was never selected or handed over closes its descriptors" do
    before = open_fds()
    {stdio, _handover_args} = Stdio.open(4096, [:output, :stderr, :stdin])
    # The listening socket, and both ends of three pipes.
    created = created_since(before)
    assert map_size(created) == 7
    Stdio.close(stdio)
    assert still_open(created) == []
  end

  test "a stdio whose listener was selected, but never handed over, closes its descriptors" do
    before = open_fds()
    {stdio, _handover_args} = Stdio.open(4096, [:output])
    created = created_since(before)
    assert map_size(created) == 3
    # Nobody connects: the listener is selected (only the stop callback may
    # close it then).
    assert {:wait, stdio} = Stdio.handover(%{stdio | port_pid: 1})
    Stdio.close(stdio)
    assert still_open(created) == []
  end
end
