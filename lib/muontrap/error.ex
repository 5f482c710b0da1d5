defmodule MuonTrap.Error do
  @moduledoc """
  Raised when the command's supervisor cannot start or contain it, for
  example when a cgroup cannot be created or a user does not exist.

  The message is the supervisor's own one-line diagnostic, which starts
  with `muontrap:` and says what to fix.
  """
  defexception [:message]

  @doc """
  Raise what `error` means for `MuonTrap.cmd/3`'s caller: for a program
  that could not be exec'd, what `System.cmd/3` raises (`ErlangError`
  with `:enoent`, `:eacces` or `:e2big`, with `call_args` as the
  arguments); otherwise `MuonTrap.Error` (also when the command's
  `:owner` went down, naming the owner).
  """
  @spec raise!(MuonTrap.Run.error(), [term()]) :: no_return()
  def raise!({:exec_error, errno}, [command | _] = call_args),
    do: :erlang.error(exec_error_reason(errno, command), call_args)

  def raise!({:owner_down, owner, reason}, _call_args),
    do: raise(MuonTrap.Error, message: MuonTrap.Owner.message(owner, reason))

  def raise!(message, _call_args), do: raise(MuonTrap.Error, message: message)

  # A bare name was looked up in PATH by the port, where System.cmd/3
  # would have found nothing (:enoent) also for a file without execute
  # permission.
  defp exec_error_reason(:enoent, _command), do: :enoent
  defp exec_error_reason(:e2big, _command), do: :e2big

  defp exec_error_reason(:eacces, command),
    do: if(MuonTrap.Bytes.member?(command, ?/), do: :eacces, else: :enoent)
end
