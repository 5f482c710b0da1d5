# A short demo: a command that starts children, run from a process that is
# then killed. With System.cmd/3 the OS processes live on; with MuonTrap they
# all die. Run with: mix run demo/contained.exs

defmodule Demo do
  def tree(marker) do
    for "/proc/" <> pid <- Path.wildcard("/proc/[0-9]*"),
        {:ok, cmdline} <- [File.read("/proc/#{pid}/cmdline")],
        String.contains?(cmdline, marker),
        {:ok, stat} <- [File.read("/proc/#{pid}/stat")],
        not (stat |> String.split(") ", parts: 2) |> List.last() |> String.starts_with?("Z")),
        do: "#{pid} #{String.replace(cmdline, <<0>>, " ")}"
  end

  def wait_for(fun, tries \\ 300) do
    cond do
      fun.() -> :ok
      tries == 0 -> :timeout
      true -> Process.sleep(10) && wait_for(fun, tries - 1)
    end
  end

  def run(name, runner) do
    # An unusual duration marks this run's processes in /proc.
    marker = "#{600_000 + :rand.uniform(99_999)}"
    script = "sleep #{marker} & sleep #{marker} & exec sleep #{marker}"
    IO.puts("\n== #{name}: sh -c '#{script}'")
    caller = spawn(fn -> runner.("sh", ["-c", script]) end)
    wait_for(fn -> Enum.count(tree(marker), &(&1 =~ ~r/^\d+ sleep/)) == 3 end)
    IO.puts("running:\n  " <> Enum.join(tree(marker), "\n  "))
    Process.exit(caller, :kill)
    IO.puts("killed the Erlang process that ran it")
    wait_for(fn -> tree(marker) == [] end, 100)

    case tree(marker) do
      [] ->
        IO.puts("left behind: nothing")

      left ->
        IO.puts("left behind:\n  " <> Enum.join(left, "\n  "))
        System.cmd("pkill", ["-f", marker])
        IO.puts("(cleaned up with pkill)")
    end
  end
end

Demo.run("System.cmd/3", &System.cmd/2)
Demo.run("MuonTrap.cmd/3", &MuonTrap.cmd/2)
