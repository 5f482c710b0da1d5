//! Plain protocol: raw output, one ack byte per up to 256 bytes.

mod common;

use common::*;

fn zeros(window: Option<&str>, n: usize) {
    let count = n.to_string();
    let mut args = vec!["--capture-output"];
    if let Some(w) = window {
        args.extend(["--stdio-window", w]);
    }
    args.extend(["head", "-c", &count, "/dev/zero"]);
    let mut port = Port::spawn(&args);
    let out = port.read_plain_acking();
    assert_eq!(out.len(), n, "window {window:?}");
    assert!(out.iter().all(|&b| b == 0));
    assert_eq!(port.wait(), 0);
}

#[test]
fn exact_output_default_window() {
    for n in [0, 1, 65536, 1_000_000, 10_000_000] {
        zeros(None, n);
    }
}

#[test]
fn exact_output_window_16() {
    for n in [0, 1, 65536, 1_000_000, 10_000_000] {
        zeros(Some("16"), n);
    }
}

#[test]
fn content_and_order_preserved() {
    let mut port = Port::spawn(&[
        "--capture-output",
        "--stdio-window",
        "100",
        "seq",
        "1",
        "100000",
    ]);
    let out = port.read_plain_acking();
    let want: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert!(out == want.as_bytes(), "seq output differs");
    assert_eq!(port.wait(), 0);
}

#[test]
fn never_more_than_the_window_unacknowledged() {
    let mut port = Port::spawn(&[
        "--capture-output",
        "--stdio-window",
        "16",
        "head",
        "-c",
        "1000",
        "/dev/zero",
    ]);
    use std::io::Read;
    let mut buf = [0u8; 1000];
    let mut got = 0;
    // Read without acking until 16 bytes arrived...
    while got < 16 {
        let n = port.stdout.read(&mut buf[got..]).unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(got, 16);
    // ...then ack 10 and expect exactly 10 more.
    port.write(&[9]);
    while got < 26 {
        let n = port.stdout.read(&mut buf[got..]).unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(got, 26);
    port.write(&plain_acks(16));
    let rest = port.read_plain_acking();
    assert_eq!(got + rest.len(), 1000);
    assert_eq!(port.wait(), 0);
}

#[test]
fn exit_status_passthrough() {
    for (script, want) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("kill -9 $$", 137),
        ("kill -15 $$", 143),
    ] {
        let mut port = Port::spawn(&["sh", "-c", script]);
        assert_eq!(port.wait(), want, "{script}");
    }
}

#[test]
fn arg0_override() {
    let mut port = Port::spawn(&[
        "--capture-output",
        "-0",
        "hello",
        "cat",
        "/proc/self/cmdline",
    ]);
    assert_eq!(port.read_plain_acking(), b"hello\0/proc/self/cmdline\0");
    assert_eq!(port.wait(), 0);
    let mut port = Port::spawn(&[
        "--capture-output",
        "--arg0=x y",
        "--",
        "cat",
        "/proc/self/cmdline",
    ]);
    assert_eq!(port.read_plain_acking(), b"x y\0/proc/self/cmdline\0");
    assert_eq!(port.wait(), 0);
}

#[test]
fn capture_modes() {
    let script = "echo out; echo err >&2";
    let cases: [(&[&str], &str, bool); 4] = [
        (&[], "", true),
        (&["--capture-output"], "out\n", true),
        (&["--capture-stderr"], "out\nerr\n", false),
        (&["--capture-stderr-only"], "err\n", false),
    ];
    for (flags, want_out, err_on_port_stderr) in cases {
        let mut args = flags.to_vec();
        args.extend(["sh", "-c", script]);
        let mut port = Port::spawn(&args);
        let out = port.read_plain_acking();
        assert_eq!(String::from_utf8_lossy(&out), want_out, "{flags:?}");
        assert_eq!(port.wait(), 0);
        // Uncaptured stderr is inherited.
        assert_eq!(
            port.stderr().contains("err"),
            err_on_port_stderr,
            "{flags:?}"
        );
    }
}

#[test]
fn only_stdio_reaches_the_program() {
    // The port's stdin/stdout (and anything else) must not leak: the shell
    // sees 0, 1, 2 only (ls's own directory fd is gone by the time it prints).
    let mut port = Port::spawn(&["--capture-output", "sh", "-c", "ls /proc/$$/fd"]);
    assert_eq!(
        String::from_utf8_lossy(&port.read_plain_acking()),
        "0\n1\n2\n"
    );
    assert_eq!(port.wait(), 0);
    // stdin is /dev/null.
    let mut port = Port::spawn(&["--capture-output", "readlink", "/proc/self/fd/0"]);
    assert_eq!(
        String::from_utf8_lossy(&port.read_plain_acking()),
        "/dev/null\n"
    );
    assert_eq!(port.wait(), 0);
}

#[test]
fn over_ack_is_a_protocol_error() {
    let mut port = Port::spawn(&["--capture-output", "sh", "-c", "echo hi; exec sleep 1000"]);
    port.read_plain_until(b"hi\n");
    // "hi\n" was acked in full; one more byte is too many (the port may
    // read both acks at once, so the numbers vary).
    port.write(&[0]);
    assert_eq!(port.wait(), 1);
    let err = port.stderr();
    assert!(
        err.starts_with("muontrap: protocol error: acknowledged "),
        "{err}"
    );
}

#[test]
fn output_is_copied_exactly_where_stdout_refuses_splice() {
    // splice(2) into an O_APPEND file fails with EINVAL: the port copies
    // the rest of that message through a stack buffer, then reads into its
    // own buffer. The window covers the whole output, so no acks are due.
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("muontrap_append_{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&dir)
        .expect("temp file");
    let script = "seq 1 300000";
    let mut child = Command::new(BIN)
        .args(["--capture-output", "--stdio-window", "4000000", "--"])
        .args(["sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .expect("spawn the port");
    // Child::wait closes stdin first, which would terminate the program.
    let stdin = child.stdin.take();
    let status = child.wait().expect("wait");
    drop(stdin);
    assert_eq!(status.code(), Some(0));
    let expected = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("seq")
        .stdout;
    let mut got = Vec::new();
    std::fs::File::open(&dir)
        .and_then(|mut f| f.read_to_end(&mut got))
        .expect("read back");
    let _ = std::fs::remove_file(&dir);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "output differs");
}
