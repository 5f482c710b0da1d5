//! For the sd_notify tests: frames read on a thread (so a test can wait
//! for one with a timeout, or for none), real senders (a Python prelude,
//! the test process itself), and the port's descriptor and memory use.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::process::Command;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

use super::{be_u32, Port, EXIT, STARTED, TIMEOUT};

/// The port's frames, read on a thread from a duplicate of its stdout.
pub struct Frames {
    rx: mpsc::Receiver<(u8, Vec<u8>)>,
}

impl Frames {
    pub fn new(port: &Port) -> Frames {
        let fd = port
            .stdout
            .as_fd()
            .try_clone_to_owned()
            .expect("dup stdout");
        let mut file = File::from(fd);
        let (tx, rx) = mpsc::channel();
        let exit = port.exit_slot();
        thread::spawn(move || loop {
            let mut len = [0u8; 4];
            if file.read_exact(&mut len).is_err() {
                return;
            }
            let mut msg = vec![0u8; u32::from_be_bytes(len) as usize];
            if file.read_exact(&mut msg).is_err() || msg.is_empty() {
                return;
            }
            let tag = msg.remove(0);
            if tag == EXIT && msg.len() == 4 {
                *exit.lock().expect("exit slot") = Some(be_u32(&msg));
            }
            if tx.send((tag, msg)).is_err() {
                return;
            }
        });
        Frames { rx }
    }

    /// The next frame within `timeout`; `None` on timeout or EOF.
    pub fn next(&self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next frame; panics after `TIMEOUT`.
    pub fn expect(&self, what: &str) -> (u8, Vec<u8>) {
        self.next(TIMEOUT)
            .unwrap_or_else(|| panic!("no frame ({what})"))
    }

    /// STARTED's pid.
    pub fn started(&self) -> i32 {
        let (tag, body) = self.expect("STARTED");
        assert_eq!(tag, STARTED, "{body:?}");
        be_u32(&body) as i32
    }

    /// Frames up to and including EXIT; returns them and the status.
    pub fn until_exit(&self) -> (Vec<(u8, Vec<u8>)>, u32) {
        let mut seen = Vec::new();
        loop {
            let (tag, body) = self.expect("EXIT");
            if tag == EXIT {
                return (seen, be_u32(&body));
            }
            seen.push((tag, body));
        }
    }
}

/// A NOTIFY body's lines.
pub fn lines(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .expect("NOTIFY is UTF-8")
        .split('\n')
        .map(str::to_string)
        .collect()
}

/// The real Python (not a pyenv shim, whose start-up costs a watchdog's
/// worth of time).
pub fn python() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// sd_notify(3) and sd_notify_barrier(3) in Python, with the standard
/// library only, as a daemon would do them.
pub const PY_NOTIFY: &str = r#"
import os, select, socket, sys, time
_addr = os.environ["NOTIFY_SOCKET"]
if _addr.startswith("@"):
    _addr = "\0" + _addr[1:]
_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
_sock.connect(_addr)
def notify(msg, fds=()):
    if fds:
        socket.send_fds(_sock, [msg.encode()], list(fds))
    else:
        _sock.send(msg.encode())
def hup(r, timeout):
    p = select.poll()
    p.register(r, 0)
    ok = bool(p.poll(int(timeout * 1000)))
    os.close(r)
    return ok
def barrier(timeout=5):
    r, w = os.pipe()
    notify("BARRIER=1", [w])
    os.close(w)
    return hup(r, timeout)
"#;

/// `python -c PY_NOTIFY + body` as the program's argv.
pub fn py(body: &str) -> Vec<String> {
    vec![
        python().to_string(),
        "-c".to_string(),
        format!("{PY_NOTIFY}\n{body}"),
    ]
}

/// `args` then `program`, as `&str`s for `Port::spawn*`.
pub fn argv<'a>(args: &[&'a str], program: &'a [String]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(program.iter().map(String::as_str));
    v
}

/// Descriptors the process has open.
/// `fd_count` once a former standby has let go of its socket to the
/// spawner (kept from `STANDBY_KEPT_MIN_FD` up until just after STARTED):
/// the baseline for a leak check.
pub fn settled_fd_count(pid: i32) -> usize {
    let kept = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("/proc/PID/fd")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .any(|fd| fd >= muontrap_wire::channel::STANDBY_KEPT_MIN_FD)
    };
    assert!(
        super::wait_until(std::time::Duration::from_secs(5), || !kept()),
        "the supervisor kept its socket to the spawner"
    );
    fd_count(pid)
}

pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// Resident memory in KiB.
pub fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `NOTIFY_SOCKET` from the program's environment, once it has exec'd.
pub fn notify_socket_of(pid: i32) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let found = env
            .split(|&b| b == 0)
            .find_map(|v| v.strip_prefix(b"NOTIFY_SOCKET="))
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(name) = found {
            return name;
        }
        assert!(
            Instant::now() < deadline,
            "no NOTIFY_SOCKET in {pid}'s environment"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `msg` (with `fds`) to the socket `@name` from this process: a
/// sender outside any program's containment.
pub fn send_from_here(name: &str, msg: &[u8], fds: &[RawFd]) {
    let abstract_name = name.strip_prefix('@').expect("an abstract name");
    let addr = UnixAddr::new_abstract(abstract_name.as_bytes()).expect("address");
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    connect(sock.as_raw_fd(), &addr).expect("connect");
    let iov = [std::io::IoSlice::new(msg)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).expect("sendmsg");
}
