defmodule MuonTrap.StdioTest do
  # The descriptor hand-over itself (MuonTrap.Stdio): only the port binary
  # is served, and a hand-over that cannot happen is one clear error.
  use ExUnit.Case, async: true

  alias MuonTrap.{Options, Protocol, Stdio}

  defp open_port(args, handover_args) do
    options = Options.validate(:cmd, "echo", args, [])
    port = MuonTrap.PortBinary.open(options, :output, handover_args)
    {port, options}
  end

  # Steps the stdio until EOF, collecting output; the port's frames are left
  # in the mailbox.
  defp read_all(stdio, acc \\ "") do
    case Stdio.next(stdio) do
      {:data, data, stdio} ->
        read_all(stdio, acc <> data)

      {:wait, stdio} ->
        %Stdio{resource: res, ref: ref} = stdio

        receive do
          {:select, ^res, ^ref, :ready_input} -> read_all(stdio, acc)
        after
          5_000 -> flunk("no output")
        end

      {:eof, _stdio} ->
        acc
    end
  end

  defp frames(port, acc \\ []) do
    receive do
      {^port, {:data, frame}} ->
        case Protocol.decode(frame) do
          {:exit, _} = exit -> Enum.reverse([exit | acc])
          other -> frames(port, [other | acc])
        end
    after
      5_000 -> flunk("no EXIT from the port, got #{inspect(Enum.reverse(acc))}")
    end
  end

  test "a stranger connecting first is not served; the port binary is" do
    {%Stdio{name: name} = stdio, handover_args} = Stdio.open(65_536)
    {:ok, squatter} = :socket.open(:local, :seqpacket, :default)
    :ok = :socket.connect(squatter, %{family: :local, path: <<0, name::binary>>})

    {port, _} = open_port(["through the pipe"], handover_args)
    stdio = Stdio.attach(stdio, port)
    assert read_all(stdio) == "through the pipe\n"
    assert [{:started, _}, {:exit, 0}] = frames(port)

    # The stranger got no descriptor: its connection was closed unanswered
    # (EOF: an empty message without control data).
    assert {:ok, %{ctrl: [], iov: [""]}} = :socket.recvmsg(squatter, 0, 0, [], 1_000)
    :socket.close(squatter)
    Port.close(port)
    Stdio.close(stdio)
  end

  test "a hand-over that cannot happen is one clear error, and no port starts" do
    {stdio, handover_args} = Stdio.open(65_536)
    # The listener is gone before the port starts: no fallback to any other path.
    Stdio.close(stdio)
    ports = Port.list()

    assert_raise MuonTrap.Error,
                 "muontrap: cannot hand the command to the port binary: :closed",
                 fn -> open_port(["never runs"], handover_args) end

    assert Port.list() -- ports == []
  end
end
