defmodule MuonTrap.Nif do
  @moduledoc false
  # Cgroup file access in Rust (native/muontrap_nif). Each cgroup function
  # takes a cgroup path relative to each hierarchy's root (or, when
  # beneath_own is true, to the BEAM's own cgroup in it), or nil when there
  # is no cgroup; see the crate's docs for which run on dirty schedulers.
  @on_load :load

  @doc false
  def load do
    path = Path.join(:code.priv_dir(:muontrap), "libmuontrap_nif")
    :erlang.load_nif(String.to_charlist(path), 0)
  end

  def cgget(_path, _beneath_own, _file), do: :erlang.nif_error(:nif_not_loaded)
  def cgset(_path, _beneath_own, _file, _value), do: :erlang.nif_error(:nif_not_loaded)
  def cgroup_config(_path, _beneath_own, _open_files), do: :erlang.nif_error(:nif_not_loaded)
  def statistics(_path, _beneath_own, _open_files), do: :erlang.nif_error(:nif_not_loaded)
  def open_files, do: :erlang.nif_error(:nif_not_loaded)
  def cleanup(_path, _beneath_own), do: :erlang.nif_error(:nif_not_loaded)
  def layout, do: :erlang.nif_error(:nif_not_loaded)

  # The pipe cmd/3 reads its command's output from (native/muontrap_nif/src/output_pipe.rs).
  def output_pipe(_window), do: :erlang.nif_error(:nif_not_loaded)
  def output_read(_pipe, _max, _select_ref), do: :erlang.nif_error(:nif_not_loaded)
  def output_close_writer(_pipe), do: :erlang.nif_error(:nif_not_loaded)
  def output_close(_pipe), do: :erlang.nif_error(:nif_not_loaded)
end
