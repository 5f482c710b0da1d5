defmodule MuonTrap.Error do
  @moduledoc """
  Raised when the port binary cannot start or contain the command, for
  example when a cgroup cannot be created or a user does not exist.

  The message is the port binary's own one-line diagnostic, which starts
  with `muontrap:` and says what to fix.
  """
  defexception [:message]
end
