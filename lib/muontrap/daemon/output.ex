defmodule MuonTrap.Daemon.Output do
  @moduledoc false
  # A daemon's output, line by line: which streams it captures and how
  # (see the table in `MuonTrap.Options`), a count of every byte, lines
  # split per stream (a line longer than 16 KiB is cut, so an unterminated
  # stream cannot grow memory), each handed to the logger at its stream's
  # level or to the `:logger_fun`, and watched for the line that makes
  # the command ready with `ready: {:output, pattern}`.

  require Logger

  alias MuonTrap.Lines

  @max_line_bytes 16_384

  defstruct log: nil,
            streams: [],
            tags: %{},
            buffers: %{},
            byte_count: 0,
            stderr_only?: false,
            watch: nil,
            seen?: false

  @typedoc "Output state: the line handler, partial lines per stream, the byte count."
  @type t :: %__MODULE__{
          log: (:stdout | :stderr, binary() -> any()) | nil,
          streams: [:output | :stderr],
          tags: %{optional(:output | :stderr) => :stdout | :stderr},
          buffers: %{optional(:output | :stderr) => MuonTrap.Lines.t()},
          byte_count: non_neg_integer(),
          stderr_only?: boolean(),
          watch: String.t() | Regex.t() | nil,
          seen?: boolean()
        }

  @doc "Output handling for a daemon's validated options."
  @spec new(binary(), map()) :: t()
  def new(command, options) do
    watch = with {:output, pattern} <- options[:ready], do: pattern, else: (_ -> nil)
    # A readiness pattern needs stdout even when nothing logs it.
    stdout_logged? = options[:logger_fun] != nil or options[:log_output] != nil or watch != nil
    stderr_alone? = options[:capture_stderr_only] == true

    {streams, tags, stderr_only?} =
      cond do
        # As in MuonTrap 2.0: stderr alone is captured (and counted) even
        # with nothing to log it to.
        stderr_alone? -> {[:output], %{output: :stderr}, true}
        options[:log_stderr] && stdout_logged? -> {[:output, :stderr], both_tags(), false}
        # Only stderr is wanted: the port puts it where stdout would go.
        options[:log_stderr] -> {[:output], %{output: :stderr}, true}
        stdout_logged? -> {[:output], %{output: :stdout}, false}
        true -> {[], %{}, false}
      end

    %__MODULE__{
      log: if(streams != [], do: log_fun(command, options)),
      streams: streams,
      tags: tags,
      buffers: Map.new(streams, &{&1, Lines.new(@max_line_bytes)}),
      stderr_only?: stderr_only?,
      watch: watch
    }
  end

  defp both_tags, do: %{output: :stdout, stderr: :stderr}

  @doc "The command's pipes to read (none when nothing is captured)."
  @spec streams(t()) :: [:output | :stderr]
  def streams(%__MODULE__{streams: streams}), do: streams

  @doc "True if the port must capture only stderr, in stdout's place."
  @spec stderr_only?(t()) :: boolean()
  def stderr_only?(%__MODULE__{stderr_only?: stderr_only?}), do: stderr_only?

  @doc "Count `data` of `stream` and handle its complete lines; a partial line waits for the rest."
  @spec handle(t(), :output | :stderr, binary()) :: t()
  def handle(out, stream, data) do
    out = %{out | byte_count: out.byte_count + byte_size(data)}
    log = out.log
    tag = Map.fetch!(out.tags, stream)
    watch = if out.seen?, do: nil, else: out.watch
    {buffer, seen?} = log_slices(&log.(tag, &1), watch, Map.fetch!(out.buffers, stream), data)
    %{out | buffers: Map.put(out.buffers, stream, buffer), seen?: out.seen? or seen?}
  end

  @doc "For a relaunched command: the byte count goes on, the readiness pattern is watched again."
  @spec reset(t()) :: t()
  def reset(out), do: %{out | seen?: false}

  @doc "True once a line matched the `ready: {:output, pattern}` pattern."
  @spec ready_seen?(t()) :: boolean()
  def ready_seen?(%__MODULE__{seen?: seen?}), do: seen?

  # Lines are split off at most @slice bytes at a time: a chunk's list of
  # lines then stays small: one list for a whole chunk costs more than
  # the same bytes in smaller slices (heap growth and GC).
  @slice 65_536

  defp log_slices(log, watch, buffer, data) when byte_size(data) > @slice do
    <<slice::binary-size(@slice), rest::binary>> = data

    case log_slices(log, watch, buffer, slice) do
      {buffer, true} -> {elem(log_slices(log, nil, buffer, rest), 0), true}
      {buffer, false} -> log_slices(log, watch, buffer, rest)
    end
  end

  defp log_slices(log, watch, buffer, data) do
    {lines, rest} = Lines.split(buffer, data)
    Enum.each(lines, log)
    {rest, watch != nil and Enum.any?(lines, &matches?(watch, &1))}
  end

  defp matches?(%Regex{} = regex, line), do: Regex.match?(regex, line)
  defp matches?(text, line), do: String.contains?(line, text)

  @doc "Handle the last, unterminated line of each stream, if any."
  @spec flush(t()) :: t()
  def flush(out) do
    Enum.each(out.buffers, fn {stream, lines} ->
      Enum.each(Lines.flush(lines), &out.log.(Map.fetch!(out.tags, stream), &1))
    end)

    %{
      out
      | buffers: Map.new(out.buffers, fn {stream, lines} -> {stream, Lines.new(lines.max)} end)
    }
  end

  # logger_fun overrides every log level, as it overrides the other log
  # options; a level that is not set means that stream is not logged.
  defp log_fun(command, options) do
    case options[:logger_fun] do
      nil ->
        prefix = Map.get(options, :log_prefix, command <> ": ")
        transform = Map.get(options, :log_transform, &default_transform/1)
        stdout = options[:log_output]
        levels = %{stdout: stdout, stderr: options[:log_stderr] || stdout}

        fn tag, line ->
          if level = Map.fetch!(levels, tag), do: Logger.log(level, [prefix, transform.(line)])
        end

      {:tagged, fun} ->
        fun

      fun when is_function(fun, 1) ->
        fn _tag, line -> fun.(line) end

      {m, f, a} ->
        fn _tag, line -> apply(m, f, [line | a]) end
    end
  end

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
