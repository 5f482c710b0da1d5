defmodule MuonTrap.Daemon.Signals do
  @moduledoc false
  # A daemon's signal requests (`MuonTrap.Daemon.signal/2`, `reload/1`):
  # each is sent by the supervisor, which answers with one SIGNALED frame,
  # in order. A reload of a `ready: :notify` command is answered only once
  # the command has reported `RELOADING=1` and then `READY=1`, like
  # systemd's `Type=notify-reload`, or with `{:error, :reload_timeout}`.

  alias MuonTrap.Protocol

  defstruct sent: :queue.new(), reloads: []

  @typedoc "Requests sent to the port, and reloads waiting for the command."
  @type t :: %__MODULE__{sent: :queue.queue(), reloads: [map()]}

  @doc "No requests."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc """
  Send signal `number` through the command's `channel` for `from`; `kind` is `:signal`, or
  `{:reload, timeout}` for a reload that waits for the notify sequence.
  """
  @spec send_signal(
          t(),
          MuonTrap.Stdio.t(),
          pos_integer(),
          GenServer.from(),
          :signal | {:reload, timeout()}
        ) :: t()
  def send_signal(signals, channel, number, from, kind) do
    _ = MuonTrap.Stdio.send_frame(channel, Protocol.signal(number))
    %{signals | sent: :queue.in({from, kind}, signals.sent)}
  end

  @doc "The port's answer to the oldest request."
  @spec answered(t(), :ok | :not_running | :refused) :: t()
  def answered(signals, result) do
    case :queue.out(signals.sent) do
      {{:value, {from, kind}}, rest} -> answer(%{signals | sent: rest}, from, kind, result)
      {:empty, _} -> signals
    end
  end

  defp answer(signals, from, {:reload, timeout}, :ok) do
    tag = make_ref()

    timer =
      if timeout != :infinity,
        do: Process.send_after(self(), {:muontrap_reload_timeout, tag}, timeout)

    reload = %{from: from, tag: tag, timer: timer, reloading?: false}
    %{signals | reloads: signals.reloads ++ [reload]}
  end

  defp answer(signals, from, _kind, :ok) do
    GenServer.reply(from, :ok)
    signals
  end

  defp answer(signals, from, _kind, error) do
    GenServer.reply(from, {:error, error})
    signals
  end

  @doc """
  A NOTIFY frame's assignments, in order: a reload is done at a
  `READY=1` that follows its `RELOADING=1` (in this frame or an earlier one).
  """
  @spec notify(t(), [{String.t(), String.t()}]) :: t()
  def notify(%__MODULE__{reloads: []} = signals, _assignments), do: signals

  def notify(signals, assignments) do
    reloads =
      Enum.flat_map(signals.reloads, fn reload ->
        case Enum.reduce(assignments, reload.reloading?, &step/2) do
          :done -> finish(reload, :ok)
          reloading? -> [%{reload | reloading?: reloading?}]
        end
      end)

    %{signals | reloads: reloads}
  end

  defp step(_assignment, :done), do: :done
  defp step({"RELOADING", "1"}, _reloading?), do: true
  defp step({"READY", "1"}, true), do: :done
  defp step(_assignment, reloading?), do: reloading?

  @doc "The reload `tag` waited too long."
  @spec timed_out(t(), reference()) :: t()
  def timed_out(signals, tag) do
    {late, waiting} = Enum.split_with(signals.reloads, &(&1.tag == tag))
    Enum.each(late, &finish(&1, {:error, :reload_timeout}))
    %{signals | reloads: waiting}
  end

  @doc "The command is gone: every request waiting is answered `{:error, :not_running}`."
  @spec abort(t()) :: t()
  def abort(signals) do
    Enum.each(:queue.to_list(signals.sent), fn {from, _} ->
      GenServer.reply(from, {:error, :not_running})
    end)

    Enum.each(signals.reloads, &finish(&1, {:error, :not_running}))
    new()
  end

  defp finish(reload, reply) do
    _ = if reload.timer, do: Process.cancel_timer(reload.timer)
    GenServer.reply(reload.from, reply)
    []
  end
end
