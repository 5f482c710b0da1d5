//! Test harness acting as the Erlang side of the port (the BEAM's side of
//! the descriptor hand-over is in `beam.rs`).
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod beam;
mod library;
mod notify;
// Not every test crate uses all of it (as for `dead_code` above).
#[allow(unused_imports)]
pub use beam::*;
#[allow(unused_imports)]
pub use library::*;
#[allow(unused_imports)]
pub use notify::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_muontrap");

/// Generous: CI machines are slow, and a hang must fail, not block forever.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Port {
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    watchdog: Option<mpsc::Sender<()>>,
}

impl Port {
    pub fn spawn(args: &[&str]) -> Port {
        Port::spawn_env(args, &[])
    }

    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Port {
        let start = Start::new(args);
        let mut cmd = Command::new(BIN);
        cmd.env_remove("MUONTRAP_LOG").args(&start.argv);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let port = Port::spawn_command(cmd);
        start.finish(&port);
        port
    }

    /// The library's start of `cmd`, handed over as it is.
    pub fn spawn_library(cmd: &muontrap_command::Command) -> Port {
        let start = Start::library(cmd);
        let mut command = Command::new(BIN);
        command.env_remove("MUONTRAP_LOG").args(&start.argv);
        let port = Port::spawn_command(command);
        start.finish(&port);
        port
    }

    /// Runs the port through `wrapper` (e.g. `setpriv --reuid=nobody ...`
    /// or `sh -c '...; exec "$0" "$@"'`), which must exec it with `args`.
    /// `pid()` is then the wrapper's pid, which becomes the port's.
    pub fn spawn_wrapped(wrapper: &[&str], args: &[&str]) -> Port {
        let start = Start::new(args);
        let mut cmd = Command::new(wrapper[0]);
        cmd.env_remove("MUONTRAP_LOG")
            .args(&wrapper[1..])
            .arg(BIN)
            .args(&start.argv);
        let port = Port::spawn_command(cmd);
        start.finish(&port);
        port
    }

    fn spawn_command(mut cmd: Command) -> Port {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn muontrap");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        // Kill a hung port so the test fails instead of blocking.
        let (tx, rx) = mpsc::channel::<()>();
        let pid = child.id() as i32;
        thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TIMEOUT) {
                eprintln!("watchdog: killing hung muontrap {pid}");
                // SAFETY: plain kill(2) of the port we spawned.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Port {
            child,
            stdin,
            stdout,
            stderr: Some(stderr),
            watchdog: Some(tx),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Closes our read end of the port's stdout (its writes then fail with
    /// EPIPE); the fd number stays valid, now /dev/null.
    pub fn close_stdout(&mut self) {
        let null = File::open("/dev/null").expect("/dev/null");
        // SAFETY: dup2 onto an fd we own; `stdout` keeps owning that number.
        assert!(unsafe { libc::dup2(null.as_raw_fd(), self.stdout.as_raw_fd()) } >= 0);
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stdin
            .as_mut()
            .expect("stdin open")
            .write_all(bytes)
            .expect("write to port");
    }

    pub fn try_status(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .expect("try_wait")
            .map(|s| s.code().expect("muontrap killed by a signal"))
    }

    /// Waits for the port to exit; panics on timeout.
    pub fn wait(&mut self) -> i32 {
        let mut status = None;
        assert!(
            wait_until(TIMEOUT, || {
                status = self.try_status();
                status.is_some()
            }),
            "muontrap did not exit"
        );
        self.watchdog = None;
        status.unwrap_or(-1)
    }

    /// Waits for the port to exit; returns the signal that killed it.
    pub fn wait_signal(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let mut status = None;
        assert!(
            wait_until(TIMEOUT, || {
                status = self.child.try_wait().expect("try_wait");
                status.is_some()
            }),
            "muontrap did not exit"
        );
        self.watchdog = None;
        status.and_then(|s| s.signal())
    }

    /// Everything the port wrote on stderr (waits for EOF).
    pub fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Plain mode: reads stdout to EOF, acknowledging every read at once
    /// (one ack byte acknowledges up to 256 bytes).
    pub fn read_plain_acking(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = self.stdout.read(&mut buf).expect("read stdout");
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
            self.ack_plain(n);
        }
    }

    /// Plain mode acks. In plain mode the port exits as soon as the output
    /// is drained, so acks for the last bytes may meet a closed pipe.
    pub fn ack_plain(&mut self, n: usize) {
        if let Some(stdin) = self.stdin.as_mut() {
            match stdin.write_all(&plain_acks(n)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.stdin = None,
                Err(e) => panic!("write to port: {e}"),
            }
        }
    }

    /// Plain mode: reads until `needle` has been seen (acking), returns what
    /// was read.
    pub fn read_plain_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while !all.windows(needle.len()).any(|w| w == needle) {
            let n = self.stdout.read(&mut buf).expect("read stdout");
            assert!(n > 0, "EOF before {:?}", String::from_utf8_lossy(needle));
            all.extend_from_slice(&buf[..n]);
            self.ack_plain(n);
        }
        all
    }

    /// Framed mode: the next message as (tag, body), None on EOF.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        if self.stdout.read_exact(&mut len).is_err() {
            return None;
        }
        let len = u32::from_be_bytes(len) as usize;
        assert!(len >= 1, "empty frame");
        let mut msg = vec![0u8; len];
        self.stdout.read_exact(&mut msg).expect("frame body");
        let tag = msg.remove(0);
        Some((tag, msg))
    }

    pub fn send_frame(&mut self, tag: u8, body: &[u8]) {
        let mut m = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        m.push(tag);
        m.extend_from_slice(body);
        self.write(&m);
    }

    /// Framed mode: reads until EXIT; returns (exit status, error
    /// messages). Panics on STARTED after the first message, on the
    /// retired DATA tags and on unknown tags.
    pub fn read_framed_until_exit(&mut self) -> (u32, Vec<String>) {
        let mut errors = Vec::new();
        loop {
            let (tag, body) = self.read_frame().expect("EOF before EXIT");
            match tag {
                ERROR => errors.push(String::from_utf8(body).expect("utf-8 error")),
                EXEC_ERROR => errors.push(format!("exec errno {}", be_u32(&body))),
                EXIT => return (be_u32(&body), errors),
                t => panic!("unexpected tag {t}"),
            }
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// Tags and roles from their one home (muontrap_wire, whose unit tests pin
// their bytes), under the names these tests use.
#[allow(unused_imports)]
pub use muontrap_wire::frame::{
    TAG_ERROR as ERROR, TAG_EXEC_ERROR as EXEC_ERROR, TAG_EXIT as EXIT, TAG_NOTIFY as NOTIFY,
    TAG_SIGNAL as SIGNAL, TAG_SIGNALED as SIGNALED, TAG_STARTED as STARTED,
    TAG_TERMINATE as TERMINATE, TAG_WATCHDOG as WATCHDOG,
};
#[allow(unused_imports)]
pub use muontrap_wire::handover::{
    ROLE_LISTEN as LISTEN, ROLE_OUTPUT as OUTPUT, ROLE_STDERR as STDERR, ROLE_STDIN as STDIN,
};

pub fn be_u32(b: &[u8]) -> u32 {
    assert_eq!(b.len(), 4, "u32 body");
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub fn plain_acks(mut n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    while n > 0 {
        let k = n.min(256);
        v.push((k - 1) as u8);
        n -= k;
    }
    v
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// True once `pid` no longer exists (reaped). Zombies still count as
/// present.
pub fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

pub fn assert_gone(pid: i32) {
    assert!(
        wait_until(Duration::from_secs(10), || gone(pid)),
        "process {pid} still exists"
    );
}

pub fn pids_in(text: &[u8]) -> Vec<i32> {
    String::from_utf8_lossy(text)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Runs the port with stdin at EOF and returns (status, stdout, stderr).
/// Only for cases where the program never starts (errors, --help).
pub fn run_no_child(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("MUONTRAP_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run muontrap");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
