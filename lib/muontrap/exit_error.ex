defmodule MuonTrap.ExitError do
  @moduledoc """
  Raised by `MuonTrap.stream!/3` after the last output of a command that
  exited with a non-zero status (`:status`, above 128 for a signal) or
  ran past its `:timeout` (`status: :timeout`).
  """

  defexception [:command, :args, :status]

  @typedoc "The command, its arguments and how it ended."
  @type t :: %__MODULE__{
          command: String.t(),
          args: [String.t()],
          status: pos_integer() | :timeout
        }

  @impl Exception
  def message(%__MODULE__{command: command, status: :timeout}),
    do: "#{inspect(command)} did not finish before its :timeout and was terminated"

  def message(%__MODULE__{command: command, status: status}) when status > 128,
    do: "#{inspect(command)} was killed by signal #{status - 128} (exit status #{status})"

  def message(%__MODULE__{command: command, status: status}),
    do: "#{inspect(command)} exited with status #{status}"
end
