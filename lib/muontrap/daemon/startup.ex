defmodule MuonTrap.Daemon.Startup do
  @moduledoc false
  # A daemon's start-up with `:ready`: `MuonTrap.Daemon.start_link/3`
  # returns only once the command is ready, so a supervisor starts its next
  # child only after this one is up.
  #
  # The daemon's `init/1` returns at once and the caller then waits with
  # `await/1`, a call the daemon answers when the command is ready, or with
  # `{:error, reason}` once the start failed: not ready within
  # `:ready_timeout` (`:ready_timeout`, after the command's tree was
  # terminated), the command exited first (`{:exit_status, n}`), it could
  # not be started (`{:muontrap_error, message}`, e.g. an exec failure),
  # the watchdog fired (`:watchdog_timeout`), `:wait_for` raised, or the
  # supervisor failed. Once failed, a late `READY=1` or matching line
  # changes nothing. A failed daemon stops with `:normal` after answering, and
  # the caller unlinks first, so a caller that does not trap exits gets the
  # error as a return value and lives on (OTP 25's `{:stop, reason}` from
  # `init/1` would kill it).
  #
  # This module also keeps what the command said about itself
  # (`MuonTrap.Daemon.Readiness`) and the reason the watchdog gives the stop.
  # A relaunched command (`MuonTrap.Daemon.Relaunch`) gets its own
  # `:ready_timeout`, but its failures end no start: they are relaunch
  # failures, and the reason a last one gives the stop.

  alias MuonTrap.Daemon.Readiness

  # The one home of :ready_timeout's default: the supervisor never sees
  # it (readiness is judged here), so it needs no Rust home.
  @default_timeout 30_000

  @doc "The `:ready_timeout` used when none is given, in milliseconds."
  @spec default_timeout() :: pos_integer()
  def default_timeout, do: @default_timeout

  defstruct readiness: nil,
            timeout: nil,
            deadline: nil,
            timer: nil,
            awaiting: [],
            failure: nil,
            stop_reason: nil,
            relaunched?: false

  @typedoc "The start-up state."
  @type t :: %__MODULE__{
          readiness: Readiness.t(),
          timeout: timeout() | nil,
          deadline: integer() | nil,
          timer: {reference(), reference()} | nil,
          awaiting: [GenServer.from()],
          failure: term(),
          stop_reason: term(),
          relaunched?: boolean()
        }

  @doc "Start the clock for a daemon's validated options."
  @spec new(map()) :: t()
  def new(options) do
    startup = %__MODULE__{readiness: Readiness.new(options[:ready])}
    timeout = if options[:ready], do: Map.get(options, :ready_timeout, @default_timeout)
    start_clock(%{startup | timeout: timeout})
  end

  defp start_clock(%{timeout: ms} = startup) when is_integer(ms),
    do: schedule(startup, System.monotonic_time(:millisecond) + ms)

  defp start_clock(startup), do: startup

  # Each timer's message carries its own tag, so one cancelled too late
  # (say, before a relaunch) is told from the current one.
  defp schedule(startup, deadline) do
    startup = cancel(startup)
    ms = max(deadline - System.monotonic_time(:millisecond), 0)
    tag = make_ref()
    timer = Process.send_after(self(), {:muontrap_ready_timeout, tag}, ms)
    %{startup | deadline: deadline, timer: {tag, timer}}
  end

  defp cancel(%{timer: {_tag, timer}} = startup) do
    _ = Process.cancel_timer(timer)
    %{startup | timer: nil}
  end

  defp cancel(startup), do: startup

  @doc """
  The command failed after it was up and a relaunch waits:
  `MuonTrap.Daemon.status/1` says `:relaunching`.
  """
  @spec relaunching(t()) :: t()
  def relaunching(startup) do
    readiness = %{Readiness.new(startup.readiness.ready) | state: :relaunching}
    %{cancel(startup) | readiness: readiness, stop_reason: nil, relaunched?: true}
  end

  @doc "The relaunched command starts: not ready until it says so, within `:ready_timeout`."
  @spec relaunched(t()) :: t()
  def relaunched(startup) do
    start_clock(%{startup | readiness: Readiness.new(startup.readiness.ready)})
  end

  @doc """
  Wait, from the process that started the daemon, until it is ready:
  `:ok`, or `{:error, reason}` once it has stopped.
  """
  @spec await(pid()) :: :ok | {:error, term()}
  def await(pid) do
    case GenServer.call(pid, :await_ready, :infinity) do
      :ok -> :ok
      {:error, reason} -> gone(pid, reason)
    end
  catch
    :exit, {reason, _call} -> gone(pid, reason)
  end

  defp gone(pid, reason) do
    Process.unlink(pid)
    ref = Process.monitor(pid)

    receive do
      {:DOWN, ^ref, :process, ^pid, _} -> :ok
    end

    # A caller that traps exits may have got the link's message already.
    receive do
      {:EXIT, ^pid, _} -> :ok
    after
      0 -> :ok
    end

    {:error, reason}
  end

  @doc "True while a `:ready` daemon's command is not ready yet and has not failed."
  @spec pending?(t()) :: boolean()
  def pending?(%__MODULE__{readiness: %Readiness{ready: nil}}), do: false
  def pending?(%__MODULE__{readiness: r}), do: r.state == :starting

  @doc """
  True while the daemon's start is not decided yet or has failed: a stop
  then ends the start. Readiness reported after the start failed
  (`READY=1` or a matching line as the command goes down) changes
  nothing. A relaunched command's start is never the daemon's.
  """
  @spec starting?(t()) :: boolean()
  def starting?(%__MODULE__{relaunched?: true}), do: false
  def starting?(startup), do: startup.failure != nil or pending?(startup)

  @doc """
  The `await/1` call: `{:reply, :ok}` when ready, `{:stop, reply}` when
  the start already failed, `{:wait, startup}` otherwise.
  """
  @spec await_call(t(), GenServer.from()) ::
          {:reply, :ok} | {:stop, {:error, term()}} | {:wait, t()}
  def await_call(%__MODULE__{failure: failure}, _from) when failure != nil,
    do: {:stop, {:error, failure}}

  def await_call(startup, from) do
    if pending?(startup),
      do: {:wait, %{startup | awaiting: [from | startup.awaiting]}},
      else: {:reply, :ok}
  end

  @doc "Apply a change of what is known of the command (started, NOTIFY, a matched line)."
  @spec update(t(), (Readiness.t() -> Readiness.t())) :: t()
  def update(startup, fun) do
    readiness = fun.(startup.readiness)
    startup = extend(%{startup | readiness: readiness})

    if pending?(startup) or startup.failure != nil do
      startup
    else
      Enum.each(startup.awaiting, &GenServer.reply(&1, :ok))
      %{cancel(startup) | awaiting: []}
    end
  end

  # EXTEND_TIMEOUT_USEC= while starting moves the deadline out to that
  # long from now, if that is later, as systemd does.
  defp extend(%{readiness: %{extend_usec: usec}, deadline: deadline} = startup)
       when is_integer(usec) and is_integer(deadline) do
    startup = %{startup | readiness: %{startup.readiness | extend_usec: nil}}
    later = System.monotonic_time(:millisecond) + div(usec, 1000)
    if pending?(startup) and later > deadline, do: schedule(startup, later), else: startup
  end

  defp extend(startup), do: startup

  @doc """
  The ready timer tagged `tag` fired: `{:failed, startup}` if the command
  is still not ready (the daemon's start failed, or a relaunched command
  failed), `:ignore` for a timer that no longer counts.
  """
  @spec timed_out(t(), reference()) :: {:failed, t()} | :ignore
  def timed_out(%__MODULE__{timer: {tag, _timer}} = startup, tag) do
    cond do
      not pending?(startup) or startup.failure != nil -> :ignore
      startup.relaunched? -> {:failed, %{startup | stop_reason: :ready_timeout, timer: nil}}
      true -> {:failed, %{startup | failure: :ready_timeout, timer: nil}}
    end
  end

  def timed_out(_startup, _stale), do: :ignore

  @doc "The watchdog fired: the start fails, or the daemon will stop with `:watchdog_timeout`."
  @spec watchdog(t()) :: t()
  def watchdog(startup) do
    if starting?(startup),
      do: %{startup | failure: startup.failure || :watchdog_timeout},
      else: %{startup | stop_reason: :watchdog_timeout}
  end

  @doc """
  Whether the command that just ended failed in a way a relaunch may
  answer: after the daemon's start, with a stop reason other than
  `:normal` (the watchdog's or a relaunch's ready timeout first).
  """
  @spec failed?(t(), term()) :: boolean()
  def failed?(startup, reason),
    do: not starting?(startup) and (startup.stop_reason || reason) != :normal

  @doc """
  The daemon is to stop with `reason`. While starting, the start failed:
  the waiting caller is answered and the daemon stops `:normal`
  (`{:stop, :normal, startup}`), or, if the caller's `await/1` call has
  not come yet, the daemon holds on to answer it (`{:hold, startup}`).
  """
  @spec finish(t(), term()) :: {:stop, term(), t()} | {:hold, t()}
  def finish(startup, reason) do
    cond do
      not starting?(startup) ->
        {:stop, startup.stop_reason || reason, startup}

      startup.awaiting == [] ->
        {:hold, %{startup | failure: startup.failure || reason}}

      true ->
        failure = startup.failure || reason
        Enum.each(startup.awaiting, &GenServer.reply(&1, {:error, failure}))
        {:stop, :normal, %{startup | failure: failure, awaiting: []}}
    end
  end
end
