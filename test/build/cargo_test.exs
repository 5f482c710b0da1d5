defmodule MuonTrap.Build.CargoTest do
  # The compiler's two cargo runs (mix/muontrap_native/cargo.exs) run side
  # by side, and their output comes out one run after the other. A fake
  # cargo stands in for the real one: the first run finishes only once the
  # second has started and printed its lines.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  alias Mix.Tasks.Compile.MuontrapNative.Cargo

  setup do
    dir = Path.join(System.tmp_dir!(), "muontrap_cargo_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    cargo = Path.join(dir, "cargo")

    File.write!(cargo, """
    #!/bin/sh
    case "$1" in
      first)
        echo "   Compiling first"
        i=0
        while [ ! -e "$FAKE_DIR/second-done" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i + 1)); done
        [ -e "$FAKE_DIR/second-done" ] || echo "first: the second run never ran"
        echo "    Finished first" >&2
        exit "${FIRST_STATUS:-0}" ;;
      second)
        echo "   Compiling second" >&2
        echo "    Finished second"
        touch "$FAKE_DIR/second-done"
        exit "${SECOND_STATUS:-0}" ;;
    esac
    """)

    File.chmod!(cargo, 0o755)
    {:ok, dir: dir, cargo: cargo}
  end

  defp run(%{dir: dir, cargo: cargo}, env \\ []) do
    env = [{"FAKE_DIR", dir} | env]
    runs = [{["first"], env}, {["second"], env}]
    output = capture_io(fn -> send(self(), {:status, Cargo.run(cargo, dir, runs)}) end)
    assert_received {:status, status}
    {output, status}
  end

  test "side by side; the second run's output comes after the first's", context do
    {output, status} = run(context)
    assert status == 0

    assert output ==
             "   Compiling first\n    Finished first\n   Compiling second\n    Finished second\n"
  end

  test "the first run failed: its status, and the others' output dropped", context do
    {output, status} = run(context, [{"FIRST_STATUS", "3"}])
    assert status == 3
    assert output == "   Compiling first\n    Finished first\n"
  end

  test "the second run failed: its status, after both outputs", context do
    {output, status} = run(context, [{"SECOND_STATUS", "5"}])
    assert status == 5
    assert output =~ ~r/first\n.*Compiling second\n    Finished second\n$/s
  end
end
