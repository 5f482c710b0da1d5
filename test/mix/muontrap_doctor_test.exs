defmodule Mix.Tasks.Muontrap.DoctorTest do
  # Runs against the real host (and in the VM with --only doctor).
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  @moduletag :doctor

  test "explains the layout, the BEAM's place and the base in every hierarchy" do
    layout = MuonTrap.Cgroup.layout()
    %{lines: lines, problems: problems} = Mix.Tasks.Muontrap.Doctor.report("muontrap", true)
    text = Enum.join(lines, "\n")
    assert text =~ "cgroup layout: #{layout.kind}"
    assert text =~ "pidfds (pidfd_open, Linux 5.3+): yes"

    for h <- List.wrap(layout.v2) ++ layout.v1 do
      assert text =~ h.mount
    end

    if layout.kind in [:v2, :hybrid] do
      assert text =~ "cgroup.kill (Linux 5.14+): yes"
    end

    # As root every base is writable or creatable; a problem names its fix.
    for {problem, fix} <- problems do
      assert is_binary(problem) and fix =~ ~r/sudo|echo|boot|mount|use/
    end

    assert text =~ ~r/base .*muontrap: (writable|absent, will be created)/
  end

  test "the task prints the report with --beneath-own-cgroup" do
    out = capture_io(fn -> Mix.Tasks.Muontrap.Doctor.run(["--beneath-own-cgroup"]) end)
    assert out =~ "cgroup layout:"
    assert out =~ "No problems found."
    # The note that suggests the flag is left out once it is given.
    refute out =~ "pass beneath_own_cgroup: true"
  end

  test "--beneath-beam, the flag's name before its release, is refused" do
    assert_raise OptionParser.ParseError, ~r/--beneath-beam/, fn ->
      Mix.Tasks.Muontrap.Doctor.run(["--beneath-beam"])
    end
  end
end
