defmodule MuonTrap.OptionsTest do
  use ExUnit.Case, async: true
  doctest MuonTrap.Options
  doctest MuonTrap.Cgroup
  doctest MuonTrap.Protocol
  doctest MuonTrap.PortBinary

  alias MuonTrap.Options

  test "errors match System.cmd/3, without running anything" do
    # validate/4 looks a bare name up in PATH like System.cmd/3, in both
    # contexts (cmd/3 alone may leave it to the port: muontrap_test.exs).
    for context <- [:cmd, :daemon],
        missing <- ["does_not_exist_mt", "./does_not_exist_mt", "/no/such/dir/mt"] do
      assert_raise ErlangError, ~r/enoent/, fn -> Options.validate(context, missing, [], []) end
    end

    assert Options.validate(:cmd, "echo", [], []).cmd =~ ~r"^/.*/echo$"
    assert Options.validate(:cmd, "echo", [], env: %{"PATH" => "/bin"}).cmd =~ ~r"^/.*/echo$"
    assert Options.validate_for_cmd("echo", [], []).cmd == "echo"

    message =
      "cannot execute MuonTrap.cmd/3 for program with null byte, got: #{inspect("ec\0ho")}"

    assert_raise ArgumentError, message, fn -> Options.validate(:cmd, "ec\0ho", [], []) end

    assert_raise ArgumentError, ~r/must be binaries/, fn ->
      Options.validate(:cmd, "echo", [:a], [])
    end

    assert_raise ArgumentError, ~r/must be binaries/, fn ->
      Options.validate(:cmd, "echo", "a", [])
    end

    assert_raise ArgumentError, ~r/for program with null byte/, fn ->
      Options.validate(:cmd, "echo", ["a\0"], [])
    end

    assert_raise ArgumentError, ~r/invalid option :bogus/, fn ->
      Options.validate(:cmd, "echo", [], bogus: 1)
    end
  end

  test "context decides which options exist" do
    assert_raise ArgumentError, ~r/invalid option :log_output/, fn ->
      Options.validate(:cmd, "echo", [], log_output: :info)
    end

    assert_raise ArgumentError, ~r/invalid option :into/, fn ->
      Options.validate(:daemon, "echo", [], into: "")
    end

    assert %{log_output: :info} = Options.validate(:daemon, "echo", [], log_output: :info)
  end

  test "bad values raise ArgumentError naming the option" do
    for {key, value} <- [
          cd: 1,
          arg0: :x,
          env: [{"A", 1}],
          env: [{:a, "b"}],
          env: :nope,
          stderr_to_stdout: 1,
          capture_stderr_only: "yes",
          delay_to_sigkill: -1,
          stdio_window: 15,
          stdio_window: "big",
          timeout: 0,
          uid: 0,
          uid: -5,
          uid: "bad name!",
          gid: 0,
          groups: "wheel",
          cgroup_path: "/abs",
          cgroup_path: "a/../b",
          cgroup_base: "",
          cgroup_base: "a//b",
          cgroup: %{memory_max: -1},
          cgroup: %{nonsense: 1},
          cgroup: %{cpu_max: {0, 100}},
          cgroup: %{cpuset_cpus: "a-b"},
          cgroup: [memory_max: 1]
        ] do
      # :cgroup settings get a valid path so only the bad value can fail.
      opts = if key == :cgroup, do: [cgroup: value, cgroup_path: "x"], else: [{key, value}]

      assert_raise ArgumentError, ~r/#{key}/, fn -> Options.validate(:cmd, "echo", [], opts) end
    end
  end

  test "the options of stdin, lines and stderr, in the contexts that take them" do
    for {context, key, value} <- [
          cmd: {:input, :atom},
          cmd: {:lines, 0},
          stream: {:lines, -1},
          stream: {:stderr, :stdout},
          stream: {:input, %{a: 1}},
          daemon: {:stdin, :yes},
          daemon: {:log_stderr, :loud},
          daemon: {:logger_fun, fn _, _, _ -> :ok end}
        ] do
      assert_raise ArgumentError, ~r/invalid option #{inspect(key)} with value/, fn ->
        Options.validate(context, "echo", [], [{key, value}])
      end
    end

    for {context, key} <- [
          cmd: :stderr,
          daemon: :input,
          daemon: :lines,
          stream: :into,
          stream: :stdin
        ] do
      assert_raise ArgumentError, ~r/invalid option #{inspect(key)}/, fn ->
        Options.validate(context, "echo", [], [{key, nil}])
      end
    end

    assert %{stdin: :pipe, log_stderr: :error} =
             Options.validate(:daemon, "echo", [], stdin: :pipe, log_stderr: :error)

    assert %{stderr: :separate, lines: 10} =
             Options.validate(:stream, "echo", [], stderr: :separate, lines: 10)
  end

  test "stderr options that contradict each other are refused" do
    for opts <- [
          [stderr: :separate, stderr_to_stdout: true],
          [stderr: :separate, capture_stderr_only: true]
        ] do
      assert_raise ArgumentError, ~r/stderr: :separate cannot be combined/, fn ->
        Options.validate(:stream, "echo", [], opts)
      end
    end

    assert_raise ArgumentError, ~r/:log_stderr cannot be combined with stderr_to_stdout/, fn ->
      Options.validate(:daemon, "echo", [], log_stderr: :error, stderr_to_stdout: true)
    end

    # capture_stderr_only wins over stderr_to_stdout, as in MuonTrap 2.0.
    assert %{capture_stderr_only: true} =
             Options.validate(:daemon, "echo", [],
               capture_stderr_only: true,
               stderr_to_stdout: true
             )

    assert %{stderr: :separate} =
             Options.validate(:stream, "echo", [], stderr: :separate, stderr_to_stdout: false)
  end

  test "bad :groups entries are refused" do
    for groups <- [[0], [-1], [:wheel], ["bad name!"], [1.5]] do
      assert_raise ArgumentError, ~r/groups/, fn ->
        Options.validate(:cmd, "echo", [], groups: groups)
      end
    end

    assert %{groups: [1, "audio"]} = Options.validate(:cmd, "echo", [], groups: [1, "audio"])
    assert %{groups: []} = Options.validate(:cmd, "echo", [], groups: [])
  end

  @tag :linux
  test ":cgroup_base and :cgroup_path are exclusive, and :cgroup needs one" do
    assert_raise ArgumentError, ~r/either :cgroup_base or :cgroup_path/, fn ->
      Options.validate(:cmd, "echo", [], cgroup_base: "a", cgroup_path: "b")
    end

    assert_raise ArgumentError, ~r/requires? a :cgroup_path or :cgroup_base/, fn ->
      Options.validate(:cmd, "echo", [], cgroup: %{memory_max: 1000})
    end

    # An empty map (what cgroup_config/1 returns without a cgroup) is harmless.
    assert %{cgroup: %{}} = Options.validate(:cmd, "echo", [], cgroup: %{})
  end

  @tag :linux
  test ":cgroup_base becomes a fresh path beneath it" do
    %{cgroup_path: a} = Options.validate(:cmd, "echo", [], cgroup_base: "base/x")
    %{cgroup_path: b} = Options.validate(:cmd, "echo", [], cgroup_base: "base/x")
    assert "base/x/" <> _ = a
    assert a != b
  end

  @tag :linux
  test "the cgroup map becomes controllers and writes for this host's layout" do
    opts =
      Options.validate(:cmd, "echo", [],
        cgroup_path: "g",
        beneath_own_cgroup: true,
        cgroup: %{memory_max: :max, pids_max: 10, cpu_weight: 50}
      )

    # What the NIF decodes into the port binary's command, as it is.
    command = MuonTrap.PortBinary.command(Options.check_host!(opts), :output)
    assert %{cgroup_path: "g", beneath_own_cgroup: true} = command
    {_made_for, {controllers, writes}} = command.cgroup_writes

    expected =
      if "memory" in MuonTrap.Cgroup.v1_controllers(),
        do: [{"memory.limit_in_bytes", "-1"}, {"pids.max", "10"}, {"cpu.shares", "512"}],
        else: [{"memory.max", "max"}, {"pids.max", "10"}, {"cpu.weight", "50"}]

    for e <- expected, do: assert(e in writes)

    assert Enum.filter(controllers, &(&1 in ["cpu", "memory", "pids"])) == [
             "cpu",
             "memory",
             "pids"
           ]
  end

  @tag :linux
  test ":beneath_own_cgroup is passed to the port binary; its unreleased old name is refused" do
    for value <- [true, false] do
      opts = Options.validate(:cmd, "echo", [], cgroup_path: "g", beneath_own_cgroup: value)
      assert MuonTrap.PortBinary.command(opts, :output).beneath_own_cgroup == value
    end

    assert_raise ArgumentError, ~r/invalid option :cgroup_beneath_beam for MuonTrap.cmd/, fn ->
      Options.validate(:cmd, "echo", [], cgroup_path: "g", cgroup_beneath_beam: true)
    end
  end

  test "v2 and v1 mappings" do
    all = %{memory_max: :max, pids_max: 10, cpu_weight: 50, memory_oom_group: true}

    assert MuonTrap.Cgroup.to_writes(all) ==
             {["cpu", "memory", "pids"],
              [
                {"cpu.weight", "50"},
                {"memory.max", "max"},
                {"memory.oom.group", "1"},
                {"pids.max", "10"}
              ]}

    v1 = ~w(blkio cpu cpuacct cpuset memory pids)

    assert MuonTrap.Cgroup.to_writes(
             %{cpu_max: {20_000, 100_000}, memory_max: 1000, memory_swap_max: 24, io_weight: 100},
             v1
           ) ==
             {["blkio", "cpu", "cpuacct", "memory"],
              [
                {"cpu.cfs_period_us", "100000"},
                {"cpu.cfs_quota_us", "20000"},
                {"blkio.weight", "100"},
                {"memory.limit_in_bytes", "1000"},
                {"memory.memsw.limit_in_bytes", "1024"}
              ]}

    for bad <- [%{memory_oom_group: true}, %{cpu_idle: true}, %{memory_high: 1}] do
      assert_raise ArgumentError, ~r/no cgroup v1 equivalent/, fn ->
        MuonTrap.Cgroup.to_writes(bad, v1)
      end
    end

    assert_raise ArgumentError, ~r/10..1000/, fn ->
      MuonTrap.Cgroup.to_writes(%{io_weight: 5}, v1)
    end

    # Only the controllers bound to v1 change: pids stays on v2 here.
    assert MuonTrap.Cgroup.to_writes(%{pids_max: :max}, ["memory"]) ==
             {["pids"], [{"pids.max", "max"}]}
  end

  test "both stderr options at once are accepted, as in MuonTrap 2.0; stderr only wins" do
    opts = Options.validate(:cmd, "echo", [], stderr_to_stdout: true, capture_stderr_only: true)
    assert MuonTrap.PortBinary.command(opts, :output).capture == :stderr_only
    assert MuonTrap.PortBinary.command(opts, :none).capture == :none
  end

  @tag :linux
  test "the original's phrases are in the messages" do
    for {opts, phrase} <- [
          {[cgroup_path: "x", cgroup: %{nonsense: 1}], "unknown cgroup config field"},
          {[cgroup_path: "x", cgroup: %{memory_max: -1}], "invalid value"},
          {[cgroup_path: "x", cgroup: %{cpu_max: {0, 1}}], "invalid value"},
          {[cgroup: %{memory_max: 1000}], "requires a :cgroup_path or :cgroup_base"},
          {[groups: ["bad name!"]], "invalid :groups entry"},
          {[groups: [0]], "invalid :groups entry"}
        ] do
      error = assert_raise ArgumentError, fn -> Options.validate(:cmd, "echo", [], opts) end
      assert error.message =~ phrase
    end
  end

  @tag :linux
  test "numbers are bounded as the port binary bounds them; every message says what to pass" do
    for {key, value} <- [
          delay_to_sigkill: 10_000_000_000,
          delay_to_sigkill: 1.5,
          stdio_window: 2 ** 33,
          timeout: 2 ** 33,
          timeout: -1,
          uid: 2 ** 32,
          gid: 4_294_967_295,
          cd: "",
          cd: ~c"/tmp",
          arg0: ~c"x",
          parallelism: :yes,
          beneath_own_cgroup: "true"
        ] do
      error =
        assert_raise ArgumentError, fn -> Options.validate(:cmd, "echo", [], [{key, value}]) end

      assert error.message =~ inspect(key)
      assert error.message =~ "expected"
      refute error.message =~ "\n"
    end

    for {key, value} <- [name: "not a name", log_output: :loud, logger_metadata: :x, wait_for: 1] do
      error =
        assert_raise ArgumentError, fn ->
          Options.validate(:daemon, "echo", [], [{key, value}])
        end

      assert error.message =~ inspect(key)
      assert error.message =~ "expected"
    end

    assert %{delay_to_sigkill: 4_294_967_295} =
             Options.validate(:cmd, "echo", [], delay_to_sigkill: 4_294_967_295)
  end

  test "logger_fun {m, f} is normalised to {m, f, []}" do
    assert %{logger_fun: {IO, :puts, []}} =
             Options.validate(:daemon, "echo", [], logger_fun: {IO, :puts})
  end

  test "logger_fun takes MuonTrap 2.0's shapes, and {:tagged, fun} for a fun told the stream" do
    tagged = fn _stream, _line -> :ok end

    assert %{logger_fun: {:tagged, ^tagged}} =
             Options.validate(:daemon, "echo", [], logger_fun: {:tagged, tagged})

    # A bare 2-arity fun raises, as in MuonTrap 2.0; so does a tagged fun
    # of another arity.
    for bad <- [&DateTime.add/2, tagged, {:tagged, &IO.puts/1}] do
      error =
        assert_raise ArgumentError, fn ->
          Options.validate(:daemon, "echo", [], logger_fun: bad)
        end

      assert error.message =~ ~r/\Ainvalid option :logger_fun with value .*\{:tagged, fun\}/
    end
  end

  test "a :groups that is not a list: MuonTrap 2.0's message" do
    error =
      assert_raise ArgumentError, fn -> Options.validate(:cmd, "echo", [], groups: "audio") end

    assert String.starts_with?(error.message, ~s(invalid option :groups with value "audio"))
    assert error.message =~ "expected a list of group names or gids"
  end

  @tag :linux
  test "validation does not read the host's cgroup layout" do
    # memory_high has no v1 equivalent: fine to validate anywhere; only a
    # command started on a host with memory on v1 refuses it.
    opts = Options.validate(:cmd, "echo", [], cgroup_path: "x", cgroup: %{memory_high: 1_000_000})

    if "memory" in MuonTrap.Cgroup.v1_controllers() do
      assert_raise ArgumentError, ~r/no cgroup v1 equivalent/, fn -> Options.check_host!(opts) end

      assert_raise ArgumentError, ~r/no cgroup v1 equivalent/, fn ->
        MuonTrap.cmd("echo", [], cgroup_path: "x", cgroup: %{memory_high: 1_000_000})
      end
    else
      assert %{cgroup: %{memory_high: 1_000_000}} = Options.check_host!(opts)
    end
  end

  describe "the :cgroup map is translated once per start" do
    setup do
      %{settings: %{pids_max: 10, cpu_weight: 50}, v1: MuonTrap.Cgroup.v1_controllers()}
    end

    @tag :linux
    test "validation keeps its pure-v2 translation, the host check one for this host",
         %{settings: settings, v1: v1} do
      opts = Options.validate(:cmd, "echo", [], cgroup_path: "x", cgroup: settings)
      assert opts.cgroup_writes == {[], MuonTrap.Cgroup.to_writes(settings, [])}

      host = Options.check_host!(opts)
      assert host.cgroup_writes == {v1, MuonTrap.Cgroup.to_writes(settings, v1)}
      # Already for this host: kept as is.
      assert Options.check_host!(host) == host
    end

    @tag :linux
    test "the port binary gets the kept translation", %{settings: settings, v1: v1} do
      opts = Options.validate(:cmd, "echo", [], cgroup_path: "x", cgroup: settings)
      kept = %{opts | cgroup_writes: {v1, {["kept"], [{"kept.file", "1"}]}}}
      # The supervisor tries the kept controller, which no host has.
      stdio = MuonTrap.PortBinary.start(MuonTrap.Stdio.open(4096, []), kept, :none)
      assert {:error, "muontrap: " <> message} = error_frame(stdio)
      assert message =~ "'kept'"
      MuonTrap.Stdio.close(stdio)
    end

    @tag :linux
    test "bad keys and values still raise when validated", %{settings: settings} do
      assert_raise ArgumentError, ~r/unknown cgroup config field :nope/, fn ->
        Options.validate(:cmd, "echo", [], cgroup: Map.put(settings, :nope, 1))
      end

      assert_raise ArgumentError, ~r/invalid value for :cgroup setting :pids_max/, fn ->
        Options.validate(:cmd, "echo", [], cgroup: %{pids_max: -1})
      end

      assert_raise ArgumentError, ~r/must be a map/, fn ->
        Options.validate(:cmd, "echo", [], cgroup: [pids_max: 1])
      end
    end
  end

  test "cmd/3 raises for bad options before running anything" do
    assert_raise ArgumentError, fn -> MuonTrap.cmd("echo", [], stdio_window: 1) end
  end

  defp error_frame(stdio) do
    {frames, state} = MuonTrap.Stdio.recv(stdio)

    case Enum.find(frames, &match?({:error, _}, &1)) do
      nil when state == :wait ->
        %MuonTrap.Stdio{resource: res, ref: ref} = stdio
        assert_receive {:select, ^res, ^ref, _}, 10_000
        error_frame(stdio)

      found ->
        found
    end
  end
end
