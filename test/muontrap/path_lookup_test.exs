defmodule MuonTrap.PathLookupTest do
  # cmd/3 leaves a bare name's PATH lookup to the supervisor only when
  # every entry of the BEAM's PATH is absolute: an empty or relative entry
  # means the directory of the moment, which the BEAM resolves itself, as
  # System.cmd/3 does. Not async: it changes the BEAM's PATH.
  use ExUnit.Case, async: false

  alias MuonTrap.Options

  setup do
    path = System.get_env("PATH")
    on_exit(fn -> System.put_env("PATH", path) end)
    %{path: path}
  end

  test "a bare name is left to the supervisor only when every PATH entry is absolute", %{
    path: path
  } do
    assert Options.validate_for_cmd("echo", [], []).cmd == "echo"

    for odd <- ["bin:" <> path, path <> "::/bin", path <> ":", ":" <> path, path <> ":./bin"] do
      System.put_env("PATH", odd)
      assert Options.validate_for_cmd("echo", [], []).cmd =~ ~r"^/.*/echo$", odd
    end

    # Longer than the NIF's first buffer (1 KiB): read whole all the same.
    long = Enum.map_join(1..200, ":", &"/nonexistent/#{&1}")
    System.put_env("PATH", long <> ":" <> path)
    assert Options.validate_for_cmd("echo", [], []).cmd == "echo"
    System.put_env("PATH", long <> ":" <> path <> ":bin")
    assert Options.validate_for_cmd("echo", [], []).cmd =~ ~r"^/.*/echo$"

    # The command's own PATH: always resolved here.
    System.put_env("PATH", path)
    assert Options.validate_for_cmd("echo", [], env: %{"PATH" => path}).cmd =~ ~r"^/.*/echo$"
  end
end
