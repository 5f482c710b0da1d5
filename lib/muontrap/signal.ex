defmodule MuonTrap.Signal do
  @moduledoc false
  # Signal names as `kill -l` knows them, lower case with `sig`
  # (`:sighup`, `:sigusr1`, `:sigrtmin`, ...), plus the aliases `:sigiot`,
  # `:sigcld` and `:sigpoll`, and their numbers on this machine.
  #
  # The table is the supervisor's own (`native/muontrap_wire`, module
  # `signals`), read through the NIF once per VM: the numbers are the C
  # library's for the architecture MuonTrap was built for (MIPS numbers
  # several differently, and has no `:sigstkflt`); with glibc the real-time
  # signals are 34 (`:sigrtmin`) to 64 (`:sigrtmax`). An integer is taken
  # as a signal number as is, from 1 to `:sigrtmax`'s.

  alias MuonTrap.Nif

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
  def number(signal) when is_integer(signal) do
    if signal in 1..max(), do: signal, else: invalid!(signal)
  end

  def number(signal) when is_atom(signal) do
    case List.keyfind(Nif.constants().signals, signal, 0) do
      {_name, number} ->
        number

      nil ->
        raise ArgumentError,
              "unknown signal #{inspect(signal)}, expected a name such as :sighup or :sigusr1 " <>
                "(as kill -l lists them, lower case) or a number in 1..#{max()}"
    end
  end

  def number(signal), do: invalid!(signal)

  defp invalid!(signal) do
    raise ArgumentError,
          "invalid signal #{inspect(signal)}, expected a name such as :sighup or a number in 1..#{max()}"
  end

  defp max, do: Nif.constants().sigrtmax
end
