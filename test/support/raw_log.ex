defmodule MuonTrap.Test.RawLog do
  @moduledoc false
  # An Erlang :logger handler that sends the test (`config.test`) the text
  # of each event that starts with `config.prefix`, as the daemon handed it
  # to Logger: Logger's console formatter replaces invalid UTF-8 by itself,
  # so a captured log cannot show whether the daemon's :log_transform ran.

  def log(%{msg: {:string, text}}, %{config: %{test: test, prefix: prefix}}) do
    text = IO.iodata_to_binary(text)
    if String.starts_with?(text, prefix), do: send(test, {:raw_log, text})
  end

  def log(_event, _config), do: :ok
end
