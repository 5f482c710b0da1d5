defmodule MuonTrap.Daemon.Relaunch do
  @moduledoc false
  # The `relaunch: [retries: n, delay: ms, max_delay: ms]` option: a daemon
  # whose command fails after it was first up relaunches it in place, after
  # a delay that doubles from `:delay` (default 100 ms) up to `:max_delay`
  # (default 30 s), instead of stopping, as systemd's `RestartSec=` and
  # `RestartSteps=` or Supervisor::Process's StartRetries space out the
  # restarts of a flapping program. Its supervisor's restart intensity is
  # then spent only once the `:retries` are.
  #
  # A failure is an exit that stops the daemon with a reason other than
  # `:normal` (a non-zero status, unless `:exit_status_to_reason` maps it
  # to `:normal`; a death by a signal), a watchdog expiry, or a relaunched
  # command that is not ready within `:ready_timeout`. The count of
  # consecutive failures starts again once a command has stayed up (ready,
  # with `:ready`) for `:max_delay`.

  require Logger

  @default_delay 100
  @default_max_delay 30_000

  @u32_max MuonTrap.Options.Values.u32_max()

  defstruct retries: 0,
            delay: @default_delay,
            max_delay: @default_max_delay,
            failures: 0,
            count: 0,
            up_since: nil,
            ever_up?: false

  @typedoc "The policy, the failures in a row, the relaunches so far and when the command came up."
  @type t :: %__MODULE__{
          retries: non_neg_integer(),
          delay: pos_integer(),
          max_delay: pos_integer(),
          failures: non_neg_integer(),
          count: non_neg_integer(),
          up_since: integer() | nil,
          ever_up?: boolean()
        }

  @doc """
  Check a `:relaunch` value; returns it as a keyword list with every key,
  or raises `ArgumentError`.

      iex> MuonTrap.Daemon.Relaunch.validate!(retries: 3)
      [retries: 3, delay: 100, max_delay: 30000]
  """
  @spec validate!(term()) :: keyword()
  def validate!(opts) do
    unless Keyword.keyword?(opts) and Keyword.has_key?(opts, :retries) do
      bad!(opts, "a keyword list with :retries")
    end

    retries = Keyword.fetch!(opts, :retries)
    delay = Keyword.get(opts, :delay, @default_delay)
    max_delay = Keyword.get(opts, :max_delay, @default_max_delay)

    for {key, _} <- opts, key not in [:retries, :delay, :max_delay] do
      bad!(opts, "only :retries, :delay and :max_delay, not #{inspect(key)}")
    end

    unless retries in 0..@u32_max, do: bad!(opts, ":retries as an integer in 0..#{@u32_max}")
    unless delay in 1..@u32_max, do: bad!(opts, ":delay as milliseconds in 1..#{@u32_max}")

    unless max_delay in delay..@u32_max//1,
      do: bad!(opts, ":max_delay as milliseconds in :delay..#{@u32_max}")

    [retries: retries, delay: delay, max_delay: max_delay]
  end

  defp bad!(value, expected) do
    raise ArgumentError,
          "invalid option :relaunch with value #{inspect(value)}, expected #{expected}"
  end

  @doc "The state for a validated `:relaunch` option, or `nil` without one."
  @spec new(keyword() | nil) :: t() | nil
  def new(nil), do: nil
  def new(opts), do: struct!(__MODULE__, opts)

  @doc "How many times the command was relaunched."
  @spec count(t() | nil) :: non_neg_integer()
  def count(nil), do: 0
  def count(relaunch), do: relaunch.count

  @doc "The command is up (running, or ready with `:ready`): its time starts now."
  @spec up(t() | nil) :: t() | nil
  def up(%__MODULE__{up_since: nil} = r),
    do: %{r | up_since: System.monotonic_time(:millisecond), ever_up?: true}

  def up(r), do: r

  @doc """
  The command failed: `{:relaunch, delay_ms, relaunch}`, or `:stop` when
  there is no relaunch (none configured, the command was never up, or
  the retries are spent).

      iex> r = MuonTrap.Daemon.Relaunch.new(retries: 2, delay: 100, max_delay: 150)
      iex> {:relaunch, 100, r} = MuonTrap.Daemon.Relaunch.failed(MuonTrap.Daemon.Relaunch.up(r))
      iex> {:relaunch, 150, r} = MuonTrap.Daemon.Relaunch.failed(r)
      iex> MuonTrap.Daemon.Relaunch.failed(r)
      :stop
  """
  @spec failed(t() | nil) :: {:relaunch, pos_integer(), t()} | :stop
  def failed(nil), do: :stop
  def failed(%__MODULE__{ever_up?: false}), do: :stop

  def failed(r) do
    failures = if stayed_up?(r), do: 0, else: r.failures

    if failures >= r.retries do
      Logger.error(
        "no relaunch left after #{failures} in a row (relaunch: retries: #{r.retries})"
      )

      :stop
    else
      delay = min(r.delay * Integer.pow(2, failures), r.max_delay)
      {:relaunch, delay, %{r | failures: failures + 1, count: r.count + 1, up_since: nil}}
    end
  end

  defp stayed_up?(%{up_since: nil}), do: false

  defp stayed_up?(r),
    do: System.monotonic_time(:millisecond) - r.up_since >= r.max_delay
end
