defmodule MuonTrap.Daemon.Output do
  @moduledoc """
  A daemon's output, line by line: counts every byte, splits lines (a
  line longer than 16 KiB is cut, so an unterminated stream cannot grow
  memory) and hands each one to the logger or the `:logger_fun`.
  """

  require Logger

  @max_line_bytes 16_384

  defstruct log: nil, capture?: false, buffer: "", byte_count: 0

  @typedoc "Output state: the line handler, a partial line, the byte count."
  @type t :: %__MODULE__{
          log: (binary() -> any()) | nil,
          capture?: boolean(),
          buffer: binary(),
          byte_count: non_neg_integer()
        }

  @doc "Output handling for a daemon's validated options."
  @spec new(binary(), map()) :: t()
  def new(command, options) do
    log = log_fun(command, options)
    # As in MuonTrap 2.0: stderr alone is captured (and counted) even with
    # nothing to log it to; plain stdout only when something logs it.
    %__MODULE__{log: log, capture?: log != nil or options[:capture_stderr_only] == true}
  end

  @doc "True if the daemon captures its command's output."
  @spec wanted?(t()) :: boolean()
  def wanted?(%__MODULE__{capture?: capture?}), do: capture?

  @doc "Count `data` and handle its complete lines; a partial line waits for the rest."
  @spec handle(t(), binary()) :: t()
  def handle(out, data) do
    out = %{out | byte_count: out.byte_count + byte_size(data)}

    if out.log, do: %{out | buffer: log_slices(out.log, out.buffer, data)}, else: out
  end

  # Lines are split off at most @slice bytes at a time: a chunk's list of
  # lines then stays small, where one list for a whole 256 KiB chunk cost
  # more than twice as much as two for 128 KiB (heap growth and GC).
  @slice 65_536

  defp log_slices(log, buffer, data) when byte_size(data) > @slice do
    <<slice::binary-size(@slice), rest::binary>> = data
    log_slices(log, log_slices(log, buffer, slice), rest)
  end

  defp log_slices(log, buffer, data) do
    {lines, rest} = split_lines(buffer <> data)
    Enum.each(lines, log)
    rest
  end

  @doc "Handle the last, unterminated line, if any."
  @spec flush(t()) :: t()
  def flush(%__MODULE__{buffer: ""} = out), do: out

  def flush(out) do
    out.log.(out.buffer)
    %{out | buffer: ""}
  end

  @doc """
  Split complete lines off `data`, cutting overlong ones.

      iex> MuonTrap.Daemon.Output.split_lines("a\\nb\\npartial")
      {["a", "b"], "partial"}
  """
  @spec split_lines(binary()) :: {[binary()], binary()}
  def split_lines(data) do
    {lines, rest} = take_lines(String.split(data, "\n"), [])
    {lines, rest} = cut_long(rest, lines)
    {Enum.reverse(lines), rest}
  end

  defp take_lines([rest], acc), do: {acc, rest}
  defp take_lines([line | more], acc), do: take_lines(more, cut_all(line, acc))

  defp cut_all(line, acc) when byte_size(line) > @max_line_bytes do
    <<head::binary-size(@max_line_bytes), tail::binary>> = line
    cut_all(tail, [head | acc])
  end

  defp cut_all(line, acc), do: [line | acc]

  defp cut_long(rest, acc) when byte_size(rest) > @max_line_bytes do
    <<head::binary-size(@max_line_bytes), tail::binary>> = rest
    cut_long(tail, [head | acc])
  end

  defp cut_long(rest, acc), do: {acc, rest}

  defp log_fun(command, options) do
    cond do
      fun = options[:logger_fun] ->
        logger_fun(fun)

      level = options[:log_output] ->
        prefix = Map.get(options, :log_prefix, command <> ": ")
        transform = Map.get(options, :log_transform, &default_transform/1)
        fn line -> Logger.log(level, [prefix, transform.(line)]) end

      true ->
        nil
    end
  end

  defp logger_fun(fun) when is_function(fun, 1), do: fun
  defp logger_fun({m, f, a}), do: fn line -> apply(m, f, [line | a]) end

  @doc """
  The default `:log_transform`: Logger handlers may crash on invalid
  UTF-8, so never hand them any.
  """
  @spec default_transform(binary()) :: binary()
  if function_exported?(String, :replace_invalid, 1) do
    def default_transform(line), do: String.replace_invalid(line)
  else
    def default_transform(line) do
      if String.valid?(line),
        do: line,
        else: "** MuonTrap filtered #{byte_size(line)} non-UTF8 bytes **"
    end
  end
end
