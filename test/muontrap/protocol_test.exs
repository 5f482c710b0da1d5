defmodule MuonTrap.ProtocolTest do
  # MuonTrap.Protocol decodes and encodes through the NIF, with the port
  # binary's own definitions (native/muontrap_wire): here the Elixir terms,
  # and the tables the NIF hands over checked against the system's.
  use ExUnit.Case, async: true

  alias MuonTrap.{Nif, Protocol}

  test "every port frame decodes to its Elixir term" do
    assert Protocol.decode(<<3, 0, 0, 1, 0>>) == {:started, 256}
    assert Protocol.decode(<<4, 255, 255, 255, 255>>) == {:exit, 4_294_967_295}
    assert Protocol.decode(<<5, "muontrap: no">>) == {:error, "muontrap: no"}
    assert Protocol.decode(<<7, 0, 0, 0, 2>>) == {:exec_error, :enoent}
    assert Protocol.decode(<<7, 0, 0, 0, 13>>) == {:exec_error, :eacces}
    assert Protocol.decode(<<7, 0, 0, 0, 7>>) == {:exec_error, :e2big}
    # An errno without a name stays a number.
    assert Protocol.decode(<<7, 0, 0, 39, 16>>) == {:exec_error, 10_000}
    assert Protocol.decode(<<8>>) == {:notify, []}
    assert Protocol.decode(<<8, "A=b=c\nnone\nK=">>) == {:notify, [{"A", "b=c"}, {"K", ""}]}
    assert Protocol.decode(<<9, 1>>) == {:watchdog, :expired}
    assert Protocol.decode(<<9, 2>>) == {:watchdog, :triggered}
    assert Protocol.decode(<<10, 0>>) == {:signaled, :ok}
    assert Protocol.decode(<<10, 1>>) == {:signaled, :not_running}
    assert Protocol.decode(<<10, 2>>) == {:signaled, :refused}
  end

  test "a frame that is none raises ArgumentError, naming it" do
    for bad <- [<<>>, <<1, "x">>, <<6>>, <<3, 0, 0, 1>>, <<9, 3>>, <<10, 0, 0>>, <<11>>] do
      assert_raise ArgumentError,
                   ~r/unexpected frame from the muontrap port: #{Regex.escape(inspect(bad))}/,
                   fn ->
                     Protocol.decode(bad)
                   end
    end
  end

  test "requests encode as the port decodes them" do
    assert Protocol.terminate() == <<4>>
    assert Protocol.signal(10) == <<5, 0, 0, 0, 10>>
    assert Protocol.signal(4_294_967_295) == <<5, 255, 255, 255, 255>>
  end

  # The table's aliases, which kill -l never prints.
  @aliases %{sigiot: :sigabrt, sigcld: :sigchld, sigpoll: :sigio}

  test "the signal table is the system's: bash's kill -l names every number" do
    %{signals: signals, sigrtmax: max} = Nif.constants()
    table = Map.new(signals)

    for {name, number} <- signals do
      case @aliases do
        %{^name => canonical} ->
          assert number == Map.fetch!(table, canonical)

        _ ->
          {out, 0} = System.cmd("bash", ["-c", "kill -l #{number}"])
          assert "sig" <> String.downcase(String.trim(out)) == Atom.to_string(name)
      end
    end

    assert table.sigrtmax == max
    assert MuonTrap.Signal.number(:sigrtmax) == max
  end

  test "the rlimit names are those of setrlimit(2)" do
    assert Nif.constants().rlimits ==
             ~w(as core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack)a
  end
end
