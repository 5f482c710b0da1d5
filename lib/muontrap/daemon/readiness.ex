defmodule MuonTrap.Daemon.Readiness do
  @moduledoc false
  # What a daemon's command has said about itself: its state, as
  # `MuonTrap.Daemon.status/1` reports it, from the sd_notify assignments
  # the supervisor forwards (`READY=1`, `RELOADING=1`, `STOPPING=1`,
  # `STATUS=`, `MAINPID=`, ...) or from a line of output that matched the
  # `ready: {:output, pattern}` option (`MuonTrap.Daemon.Output` watches).
  #
  # States: `:starting` until the command runs (and, with `:ready`, until
  # it is ready), then `:running` (no `:ready` configured) or `:ready`;
  # `:reloading` after `RELOADING=1` until `READY=1`; `:stopping` after
  # `STOPPING=1` or once the daemon stops it; `:relaunching` while a
  # relaunch waits for its delay (`MuonTrap.Daemon.Relaunch`), after which
  # the next command is `:starting` again.

  defstruct ready: nil,
            state: :starting,
            status_text: nil,
            main_pid: nil,
            watchdog_usec: nil,
            extend_usec: nil

  @typedoc "The readiness option: `nil`, `:notify` or `{:output, pattern}`."
  @type ready :: nil | :notify | {:output, String.t() | Regex.t()}

  @typedoc "A daemon's state."
  @type state :: :starting | :running | :ready | :reloading | :stopping | :relaunching

  @typedoc "What is known of the command."
  @type t :: %__MODULE__{
          ready: ready(),
          state: state(),
          status_text: String.t() | nil,
          main_pid: pos_integer() | nil,
          watchdog_usec: pos_integer() | nil,
          extend_usec: pos_integer() | nil
        }

  @doc "Nothing known yet, for the `:ready` option."
  @spec new(ready()) :: t()
  def new(ready), do: %__MODULE__{ready: ready}

  @doc "Whether the command is up: running, or ready with `:ready` (reloading counts)."
  @spec up?(t()) :: boolean()
  def up?(%__MODULE__{state: state}), do: state in [:running, :ready, :reloading]

  @doc "The command runs: without `:ready` that is all there is to wait for."
  @spec started(t()) :: t()
  def started(%__MODULE__{ready: nil, state: :starting} = r), do: %{r | state: :running}
  def started(r), do: r

  @doc """
  Apply the assignments of one NOTIFY frame, in order.

      iex> r = MuonTrap.Daemon.Readiness.new(:notify)
      iex> r = MuonTrap.Daemon.Readiness.notify(r, [{"STATUS", "warming up"}, {"READY", "1"}])
      iex> {r.state, r.status_text}
      {:ready, "warming up"}
      iex> MuonTrap.Daemon.Readiness.notify(r, [{"RELOADING", "1"}]).state
      :reloading
  """
  @spec notify(t(), [{String.t(), String.t()}]) :: t()
  def notify(r, assignments), do: Enum.reduce(assignments, r, &assign/2)

  # READY=1 counts as readiness only with ready: :notify; from a command
  # that only speaks to the watchdog it ends a reload at most.
  defp assign({"READY", "1"}, %{state: :stopping} = r), do: r
  defp assign({"READY", "1"}, %{ready: :notify} = r), do: %{r | state: :ready}
  defp assign({"READY", "1"}, %{state: :reloading} = r), do: %{r | state: back(r)}

  defp assign({"RELOADING", "1"}, %{state: s} = r) when s != :stopping,
    do: %{r | state: :reloading}

  defp assign({"STOPPING", "1"}, r), do: %{r | state: :stopping}
  defp assign({"STATUS", text}, r), do: %{r | status_text: text}
  defp assign({"MAINPID", pid}, r), do: put_integer(r, :main_pid, pid)
  defp assign({"WATCHDOG_USEC", usec}, r), do: put_integer(r, :watchdog_usec, usec)
  defp assign({"EXTEND_TIMEOUT_USEC", usec}, r), do: put_integer(r, :extend_usec, usec)
  defp assign(_other, r), do: r

  defp back(%{ready: nil}), do: :running
  defp back(_r), do: :ready

  defp put_integer(r, key, text) do
    case Integer.parse(text) do
      {n, ""} when n > 0 -> Map.put(r, key, n)
      _ -> r
    end
  end

  @doc """
  A line of output matched the `ready: {:output, pattern}` pattern: while
  starting, the command is now ready.

      iex> r = MuonTrap.Daemon.Readiness.new({:output, ~r/listening/})
      iex> MuonTrap.Daemon.Readiness.output_matched(r).state
      :ready
  """
  @spec output_matched(t()) :: t()
  def output_matched(%__MODULE__{ready: {:output, _}, state: :starting} = r),
    do: %{r | state: :ready}

  def output_matched(r), do: r

  @doc "What `MuonTrap.Daemon.status/1` returns."
  @spec report(t()) :: %{
          state: state(),
          status_text: String.t() | nil,
          main_pid: pos_integer() | nil
        }
  def report(r), do: %{state: r.state, status_text: r.status_text, main_pid: r.main_pid}
end
