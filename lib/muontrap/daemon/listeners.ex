defmodule MuonTrap.Daemon.Listeners do
  @moduledoc false
  # The `listen_sockets:` option: socket activation, as systemd does it.
  # Listening sockets the BEAM opened (`:gen_tcp`, `:socket`, TCP or
  # Unix-domain) are handed to each command the daemon launches as fds 3,
  # 4, …, with `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` set, so
  # `sd_listen_fds(3)` (or Python's `socket.fromfd(3, …)`) finds them.
  #
  # The daemon takes its own duplicates when it starts and holds them until
  # it stops, so every relaunched command gets the same listeners, and a
  # client that connects while the command restarts waits in the backlog
  # for the next command instead of being refused. A daemon restarted by
  # its supervisor takes them again from its child spec's sockets, so they
  # must still be open: let a process that outlives the daemon (one started
  # before it) own them.
  #
  # The command shares each socket's open file description with the BEAM.
  # The listener it gets is therefore non-blocking (the BEAM's sockets
  # are), and if the command clears `O_NONBLOCK` the BEAM's copy changes too.
  #
  # The descriptor of a `:gen_tcp` socket comes from `:inet.getfd/1`, which
  # is not documented. Should it go or change shape, the daemon refuses
  # the socket with an `ArgumentError` that says so; a `:socket` socket
  # (`:socket.getopt(socket, {:otp, :fd})`, documented) is the way then.

  alias MuonTrap.Nif

  # The descriptors one hand-over carries (docs/protocol.md), less those
  # of the pipes.
  @max_sockets 29

  @typedoc "A listening socket: a `:gen_tcp` port or a `:socket` handle."
  @type socket :: port() | :socket.socket() | tuple()

  @typedoc "An entry of the option: a socket, or a name for `LISTEN_FDNAMES` and a socket."
  @type entry :: socket() | {String.t(), socket()}

  @typedoc "The daemon's duplicates and their names, in order."
  @type t :: %{resource: reference(), names: [String.t()]}

  @doc """
  Check a `listen_sockets:` value: a list of sockets, each alone or with
  a name (1 to 255 printable ASCII characters, no `:`; `"unknown"`, as
  `sd_listen_fds_with_names(3)` says, when none is given). Returns
  `[{name, socket}]`, or raises `ArgumentError`. Whether each one is a
  listening socket is checked when the daemon starts (`check!/1`).
  """
  @spec validate!(term()) :: [{String.t(), socket()}]
  def validate!(entries) when is_list(entries) and length(entries) in 1..@max_sockets do
    Enum.map(entries, fn
      {name, socket} -> {name!(name), socket!(socket)}
      socket -> {"unknown", socket!(socket)}
    end)
  end

  def validate!(other),
    do: bad!(other, "a list of 1 to #{@max_sockets} listening sockets")

  defp name!(name) do
    if is_binary(name) and byte_size(name) in 1..255 and name =~ ~r/\A[\x21-\x39\x3b-\x7e]+\z/,
      do: name,
      else: bad!(name, "a name of 1 to 255 printable ASCII characters without \":\"")
  end

  defp socket!(socket) when is_port(socket), do: socket
  defp socket!({:"$socket", _} = socket), do: socket
  defp socket!({:"$inet", _, _} = socket), do: socket
  defp socket!(other), do: bad!(other, "a :gen_tcp or :socket listening socket")

  defp bad!(value, expected) do
    raise ArgumentError,
          "invalid option :listen_sockets with value #{inspect(value)}, expected #{expected}"
  end

  @doc """
  Check, in the process that starts the daemon, that every socket is open
  and listening: raises `ArgumentError` naming the first that is not.
  """
  @spec check!([{String.t(), socket()}]) :: :ok
  def check!(entries) do
    fds = Enum.map(entries, &fd!/1)

    case Nif.listeners_check(fds) do
      :ok -> :ok
      {:error, {index, reason}} -> refused!(Enum.at(entries, index), reason)
    end
  end

  @doc """
  Take the daemon's own duplicates of the sockets, or raise
  `MuonTrap.Error` if one was closed since `check!/1`.
  """
  @spec take!([{String.t(), socket()}]) :: t()
  def take!(entries) do
    fds = Enum.map(entries, &fd!/1)

    case Nif.listeners_take(fds) do
      {:ok, resource} ->
        # The numbers were names, not capabilities: if a socket closed and
        # another took its number before the duplicate, the number it
        # reports now differs (or it is closed).
        unless Enum.map(entries, &fd!/1) == fds, do: refused!(hd(entries), :closed)
        %{resource: resource, names: Enum.map(entries, &elem(&1, 0))}

      {:error, {index, reason}} ->
        raise MuonTrap.Error, message: message(Enum.at(entries, index), reason)
    end
  end

  defp refused!(entry, reason), do: raise(ArgumentError, message(entry, reason))

  defp message({name, socket}, reason),
    do: "invalid option :listen_sockets with value #{inspect(socket)} (#{name}) #{why(reason)}"

  defp why(:closed), do: "is closed"
  defp why(:ebadf), do: "is closed"

  defp why(:not_listening),
    do: "is not a listening socket (call :gen_tcp.listen/2 or :socket.listen/1)"

  defp why(:no_getfd),
    do: "has no descriptor: :inet.getfd/1 is missing here; pass a :socket socket"

  defp why(posix), do: "cannot be duplicated: #{:file.format_error(posix)}"

  defp fd!({_name, socket} = entry) do
    case fd(socket) do
      {:ok, fd} -> fd
      {:error, reason} -> refused!(entry, reason)
    end
  end

  defp fd({:"$socket", _} = socket) do
    case :socket.getopt(socket, {:otp, :fd}) do
      {:ok, fd} when is_integer(fd) and fd >= 0 -> {:ok, fd}
      _closed -> {:error, :closed}
    end
  end

  # A :gen_tcp socket on the inet_backend: :socket backend wraps a :socket.
  defp fd({:"$inet", _module, {_pid, {:"$socket", _} = socket}}), do: fd(socket)
  defp fd({:"$inet", _module, _other}), do: {:error, :no_getfd}

  defp fd(port) when is_port(port) do
    if function_exported?(:inet, :getfd, 1) do
      inet_fd(port)
    else
      {:error, :no_getfd}
    end
  end

  defp inet_fd(port) do
    case apply(:inet, :getfd, [port]) do
      {:ok, fd} when is_integer(fd) and fd >= 0 -> {:ok, fd}
      {:error, _} -> {:error, :closed}
      _other_shape -> {:error, :no_getfd}
    end
  rescue
    ArgumentError -> {:error, :closed}
  end
end
