//! Test harness acting as the Erlang side of the port: the plain command
//! line as a child process, the library's start through a spawner of the
//! port's own (`spawner.rs`) and a channel (the BEAM's side of the
//! descriptor hand-over is in `beam.rs`).
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::socket::Shutdown;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod beam;
mod library;
mod notify;
mod spawner;
// Not every test crate uses all of it (as for `dead_code` above).
#[allow(unused_imports)]
pub use beam::*;
#[allow(unused_imports)]
pub use library::*;
#[allow(unused_imports)]
pub use notify::*;
#[allow(unused_imports)]
pub use spawner::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_muontrap");

/// Generous: CI machines are slow, and a hang must fail, not block forever.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Port {
    /// The plain command line's process; `None` for a supervisor.
    child: Option<Child>,
    /// The supervisor's spawner (its own, so its stderr is this port's).
    spawner: Option<Spawner>,
    /// The supervisor's pid (HELLO), or the child's.
    pid: i32,
    /// The port's stdin: the channel (a dup) or the pipe.
    pub stdin: Option<File>,
    /// The port's stdout: the channel or the pipe.
    pub stdout: File,
    stderr: Option<JoinHandle<String>>,
    watchdog: Option<mpsc::Sender<()>>,
    /// The status of the last EXIT frame read (here or by `Frames`).
    exit: Arc<Mutex<Option<u32>>>,
}

impl Port {
    pub fn spawn(args: &[&str]) -> Port {
        Port::spawn_env(args, &[])
    }

    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Port {
        Port::start(Start::new(args), &[], env)
    }

    /// The library's start of `cmd`, handed over as it is.
    pub fn spawn_library(cmd: &muontrap_command::Command) -> Port {
        Port::start(Start::library(cmd), &[], &[])
    }

    /// Runs the port (the spawner, for the library's start) through
    /// `wrapper` (e.g. `setpriv --reuid=nobody ...` or
    /// `sh -c '...; exec "$0" "$@"'`), which must exec it.
    pub fn spawn_wrapped(wrapper: &[&str], args: &[&str]) -> Port {
        Port::start(Start::new(args), wrapper, &[])
    }

    fn start(start: Start, wrapper: &[&str], env: &[(&str, &str)]) -> Port {
        let Some(argv) = &start.argv else {
            return Port::on_spawner(Spawner::start_with(wrapper, env), start);
        };
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.env_remove("MUONTRAP_LOG").args(argv);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Port::spawn_command(cmd)
    }

    /// A supervisor of `spawner`'s for `start`.
    pub fn on_spawner(mut spawner: Spawner, start: Start) -> Port {
        let (channel, pid) = start.open(&spawner);
        let stderr = spawner.take_stderr();
        Port {
            child: None,
            spawner: Some(spawner),
            pid,
            stdin: Some(channel.try_clone().expect("dup")),
            stdout: channel,
            stderr,
            watchdog: Some(kill_after_timeout(pid)),
            exit: Arc::default(),
        }
    }

    fn spawn_command(mut cmd: Command) -> Port {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn muontrap");
        let stdin = child.stdin.take().map(|s| File::from(OwnedFd::from(s)));
        let stdout = File::from(OwnedFd::from(child.stdout.take().expect("stdout")));
        let mut err = child.stderr.take().expect("stderr");
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let pid = child.id() as i32;
        Port {
            child: Some(child),
            spawner: None,
            pid,
            stdin,
            stdout,
            stderr: Some(stderr),
            watchdog: Some(kill_after_timeout(pid)),
            exit: Arc::default(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Where EXIT statuses read from this port go.
    pub fn exit_slot(&self) -> Arc<Mutex<Option<u32>>> {
        Arc::clone(&self.exit)
    }

    fn exit(&self) -> Option<u32> {
        *self.exit.lock().expect("exit slot")
    }

    /// The supervisor's spawner (library start only).
    pub fn spawner(&mut self) -> &mut Spawner {
        self.spawner.as_mut().expect("a supervisor's spawner")
    }

    /// Plain: closes the pipe. A channel: shuts down our sending side
    /// (the supervisor reads EOF; other copies of it stay open).
    pub fn close_stdin(&mut self) {
        if let Some(s) = self.stdin.take() {
            if self.child.is_none() {
                let _ = nix::sys::socket::shutdown(s.as_raw_fd(), Shutdown::Write);
            }
        }
    }

    /// Closes our read end of the port's stdout (its writes then fail with
    /// EPIPE); the fd number stays valid, now /dev/null.
    pub fn close_stdout(&mut self) {
        if self.child.is_none() {
            let _ = nix::sys::socket::shutdown(self.stdout.as_raw_fd(), Shutdown::Read);
        }
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

    /// The exit status; for a supervisor (whose status nobody can
    /// collect: its spawner ignores SIGCHLD) the last EXIT frame's once
    /// it is gone, -1 without one.
    pub fn try_status(&mut self) -> Option<i32> {
        match &mut self.child {
            Some(child) => child
                .try_wait()
                .expect("try_wait")
                .map(|s| s.code().expect("muontrap killed by a signal")),
            None => finished(self.pid).then(|| self.exit().map_or(-1, |s| s as i32)),
        }
    }

    /// Waits for the port to exit; panics on timeout. A supervisor's
    /// frames are read to EOF first (recording EXIT).
    pub fn wait(&mut self) -> i32 {
        if self.child.is_none() {
            while self.read_frame().is_some() {}
        }
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
    /// (The plain command line only: a supervisor's status is nobody's.)
    pub fn wait_signal(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let child = self.child.as_mut().expect("a plain command line");
        let mut status = None;
        assert!(
            wait_until(TIMEOUT, || {
                status = child.try_wait().expect("try_wait");
                status.is_some()
            }),
            "muontrap did not exit"
        );
        self.watchdog = None;
        status.and_then(|s| s.signal())
    }

    /// Waits until the supervisor is gone (or a zombie), however it ended.
    pub fn wait_gone(&mut self) {
        let pid = self.pid;
        assert!(wait_until(TIMEOUT, || finished(pid)), "{pid} did not exit");
        self.watchdog = None;
    }

    /// Everything the port wrote on stderr (waits for EOF; a supervisor's
    /// spawner is told to exit first).
    pub fn stderr(&mut self) -> String {
        if let Some(s) = &mut self.spawner {
            s.close();
        }
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
        let frame = read_frame_from(&self.stdout);
        if let Some((EXIT, body)) = &frame {
            *self.exit.lock().expect("exit slot") = Some(be_u32(body));
        }
        frame
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
        match &mut self.child {
            Some(child) => {
                let running = child.try_wait().ok().flatten().is_none();
                if running {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            None if !finished(self.pid) => {
                // SAFETY: kill(2) of the supervisor this test started.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
            }
            None => {}
        }
    }
}

/// Kills a hung port (by then its pid is certainly still ours: nothing
/// reaped it) so the test fails instead of blocking; stopped by dropping
/// the sender.
fn kill_after_timeout(pid: i32) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TIMEOUT) {
            eprintln!("watchdog: killing hung muontrap {pid}");
            // SAFETY: plain kill(2) of the port we spawned.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    tx
}

/// Gone, or a zombie (an orphan whose reaper is slow or absent).
pub fn finished(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
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
