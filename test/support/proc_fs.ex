defmodule MuonTrap.Test.ProcFS do
  @moduledoc false
  # The test helpers' reads of /proc and /sys, straight through :prim_file.
  # File's functions (and Path.wildcard/1) are calls to the one :file_server
  # process: every async test's scans of /proc queue there, and beside two
  # CPU hogs a scan could wait for seconds. Measured here, 10 callers doing
  # 20 scans of /proc's cmdlines each: 324-583 ms through File, 111-135 ms
  # through :prim_file.

  @doc "A file's contents, as `File.read/1`."
  def read(path), do: :prim_file.read_file(path)

  @doc "A directory's entries as binaries, as `File.ls/1`."
  def ls(path) do
    with {:ok, names} <- :prim_file.list_dir(path), do: {:ok, Enum.map(names, &List.to_string/1)}
  end

  @doc "As `ls/1`, raising on error."
  def ls!(path) do
    case ls(path) do
      {:ok, names} -> names
      {:error, reason} -> raise File.Error, reason: reason, action: "list directory", path: path
    end
  end

  @doc "A symbolic link's target, as `File.read_link/1`."
  def read_link(path) do
    with {:ok, target} <- :prim_file.read_link(path), do: {:ok, List.to_string(target)}
  end

  @doc "True if `path` exists."
  def exists?(path), do: match?({:ok, _}, :prim_file.read_file_info(path))

  @doc "True if `path` is a directory."
  def dir?(path) do
    # The second field of the #file_info{} record is the type.
    match?({:ok, info} when elem(info, 2) == :directory, :prim_file.read_file_info(path))
  end

  @doc ~S'Every process directory of /proc, as "/proc/PID".'
  def pids do
    for name <- ls!("/proc"), name =~ ~r/^\d+$/, do: "/proc/" <> name
  end
end
