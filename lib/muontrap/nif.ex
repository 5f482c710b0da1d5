defmodule MuonTrap.Nif do
  @moduledoc false
  # Cgroup file access in Rust (native/muontrap_nif). Each function runs on a
  # dirty IO scheduler and takes a cgroup path relative to the cgroup v2 mount,
  # or nil when there is no cgroup.
  @on_load :load

  @doc false
  def load do
    path = Path.join(:code.priv_dir(:muontrap), "libmuontrap_nif")
    :erlang.load_nif(String.to_charlist(path), 0)
  end

  def cgget(_path, _file), do: :erlang.nif_error(:nif_not_loaded)
  def cgset(_path, _file, _value), do: :erlang.nif_error(:nif_not_loaded)
  def cgroup_config(_path), do: :erlang.nif_error(:nif_not_loaded)
  def statistics(_path), do: :erlang.nif_error(:nif_not_loaded)
end
