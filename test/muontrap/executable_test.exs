defmodule MuonTrap.ExecutableTest do
  # MuonTrap.Nif.find_executable/2 gives os:find_executable/2's answers,
  # to the byte, over names and PATH values of every shape: entries empty,
  # quoted, relative, with "." components and repeated slashes; files that
  # are executable, not executable, directories, links.
  use ExUnit.Case, async: true

  alias MuonTrap.Nif

  @moduletag :tmp_dir

  defp file(path, mode) do
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, "#!/bin/sh\n")
    File.chmod!(path, mode)
  end

  test "the same answers as os:find_executable/2", %{tmp_dir: tmp} do
    file("#{tmp}/a/prog", 0o755)
    file("#{tmp}/b/prog", 0o700)
    file("#{tmp}/b/only_b", 0o100)
    file("#{tmp}/a/plain", 0o644)
    File.mkdir_p!("#{tmp}/a/dir")
    File.ln_s!("#{tmp}/a/prog", "#{tmp}/c_link")
    File.ln_s!("#{tmp}/missing", "#{tmp}/broken")
    rel = Path.relative_to_cwd(tmp)
    refute Path.type(rel) == :absolute, "the temporary directory is below the cwd"

    names =
      ["prog", "only_b", "plain", "dir", "c_link", "broken", "none", "a/prog", "./a/prog"] ++
        ["#{rel}/a/prog", "./#{rel}/b/prog", "#{rel}/a/plain"] ++
        ["#{tmp}/a/prog", "#{tmp}/a/plain", "#{tmp}/a/dir", "#{tmp}/c_link", "#{tmp}/none"]

    paths = [
      "",
      ":",
      "#{tmp}/a",
      "#{tmp}/b:#{tmp}/a",
      "#{tmp}/a/:#{tmp}/b",
      "#{tmp}//a/./:#{tmp}/./b/.",
      "/nonexistent::#{tmp}/b",
      ~s("#{tmp}/b":#{tmp}/a),
      ~s(":"#{tmp}/a),
      "#{rel}/a:#{rel}/b",
      "./#{rel}/b",
      tmp,
      "#{tmp}/a/plain:#{tmp}/a",
      "#{rel}"
    ]

    for name <- names, path <- paths do
      expected =
        case :os.find_executable(to_charlist(name), to_charlist(path)) do
          false -> nil
          found -> List.to_string(found)
        end

      assert Nif.find_executable(name, path) == expected, "#{inspect(name)} in #{inspect(path)}"
    end
  end

  test "what cmd/3 and Daemon find is os:find_executable/1's" do
    for name <- ["sh", "true", "env"] do
      assert MuonTrap.Options.validate(:daemon, name, [], []).cmd ==
               List.to_string(:os.find_executable(to_charlist(name)))
    end
  end
end
