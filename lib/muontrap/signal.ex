defmodule MuonTrap.Signal do
  @moduledoc """
  Signal names as `kill -l` knows them, lower case with `sig`
  (`:sighup`, `:sigusr1`, `:sigrtmin`, ...), and their Linux numbers.

  The numbers are those of every architecture MuonTrap builds for
  (x86, Arm, RISC-V); glibc's real-time signals are 34 (`:sigrtmin`) to
  64 (`:sigrtmax`). An integer is taken as a signal number as is.
  """

  @names [
    sighup: 1,
    sigint: 2,
    sigquit: 3,
    sigill: 4,
    sigtrap: 5,
    sigabrt: 6,
    sigiot: 6,
    sigbus: 7,
    sigfpe: 8,
    sigkill: 9,
    sigusr1: 10,
    sigsegv: 11,
    sigusr2: 12,
    sigpipe: 13,
    sigalrm: 14,
    sigterm: 15,
    sigstkflt: 16,
    sigchld: 17,
    sigcont: 18,
    sigstop: 19,
    sigtstp: 20,
    sigttin: 21,
    sigttou: 22,
    sigurg: 23,
    sigxcpu: 24,
    sigxfsz: 25,
    sigvtalrm: 26,
    sigprof: 27,
    sigwinch: 28,
    sigio: 29,
    sigpoll: 29,
    sigpwr: 30,
    sigsys: 31,
    sigrtmin: 34,
    sigrtmax: 64
  ]

  @max 64

  @typedoc "A signal: a name such as `:sighup`, or a number."
  @type t :: atom() | pos_integer()

  @doc """
  The number of `signal`, or `ArgumentError` for a name `kill -l` does
  not know or a number outside 1..64.

      iex> MuonTrap.Signal.number(:sigusr1)
      10
      iex> MuonTrap.Signal.number(15)
      15
  """
  @spec number(t()) :: pos_integer()
  def number(signal) when is_integer(signal) and signal in 1..@max, do: signal

  def number(signal) when is_atom(signal) do
    Keyword.get(@names, signal) ||
      raise ArgumentError,
            "unknown signal #{inspect(signal)}, expected a name such as :sighup or :sigusr1 " <>
              "(as kill -l lists them, lower case) or a number in 1..#{@max}"
  end

  def number(signal) do
    raise ArgumentError,
          "invalid signal #{inspect(signal)}, expected a name such as :sighup or a number in 1..#{@max}"
  end
end
