//! Whether the spawner is single-threaded, checked before each fork (a
//! fork could otherwise copy another thread's lock held mid-update).
//!
//! Linux counts a process's threads in the link count of its
//! `/proc/<pid>/task` directory (two links and one per thread), so the
//! spawner keeps that directory open and compares one `fstat` with the
//! count it had when `/proc/self/stat` showed one thread. Rendering
//! `/proc/self/stat` at each fork took about 5 µs of a burst's start
//! (docs/performance.md, round 17). Elsewhere there is no portable count:
//! the spawner never starts a thread (no std runtime, no library that
//! spawns), so there it holds by construction.

#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};

/// `/proc/self/task`, open for the spawner's life (-1: not open), and its
/// link count with one thread. Closed in every supervisor with the rest
/// (`supervisor.rs`).
#[cfg(target_os = "linux")]
static TASKS: AtomicI32 = AtomicI32::new(-1);
#[cfg(target_os = "linux")]
static ONE_THREAD_LINKS: AtomicU64 = AtomicU64::new(0);

/// Opens `/proc/self/task` for `single`, once `/proc/self/stat` shows one
/// thread. Without it, `single` reads `/proc/self/stat` each time.
#[cfg(target_os = "linux")]
pub fn watch() {
    // SAFETY: open(2) of a NUL-terminated path; the fd is kept for life.
    let fd = unsafe {
        libc::open(
            c"/proc/self/task".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    match links(fd) {
        Some(n) if fd >= 0 && threads_in_stat() == Some(1) => {
            ONE_THREAD_LINKS.store(n, Relaxed);
            TASKS.store(fd, Relaxed);
        }
        _ if fd >= 0 => crate::fds::close(fd),
        _ => {}
    }
}

#[cfg(not(target_os = "linux"))]
pub fn watch() {}

/// Whether this process has exactly one thread.
#[cfg(target_os = "linux")]
pub fn single() -> bool {
    let fd = TASKS.load(Relaxed);
    if fd >= 0 {
        return links(fd) == Some(ONE_THREAD_LINKS.load(Relaxed));
    }
    // No /proc: nothing to check with.
    threads_in_stat().is_none_or(|n| n == 1)
}

#[cfg(not(target_os = "linux"))]
pub fn single() -> bool {
    true
}

/// The link count of the open directory `fd`.
#[cfg(target_os = "linux")]
fn links(fd: i32) -> Option<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat(2) fills the stat buffer it is given (or fails on a
    // bad fd, -1 included).
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat returned 0, so it wrote the whole structure.
    let links = unsafe { st.assume_init() }.st_nlink;
    // nlink_t is 32 bits wide on the boards' targets.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(links))
}

/// The thread count `/proc/self/stat` shows (read without allocating).
#[cfg(target_os = "linux")]
fn threads_in_stat() -> Option<u64> {
    let mut buf = [0u8; 1024];
    let n = crate::fds::read_file(c"/proc/self/stat", &mut buf)?;
    num_threads(&buf[..n])
}

/// Field 20 of `/proc/<pid>/stat`, counted after the `(comm)` field,
/// which may hold spaces and parentheses.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn num_threads(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    // After ")": state is field 3, so num_threads is the 18th word.
    let word = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .nth(17)?;
    std::str::from_utf8(word).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::num_threads;

    #[test]
    fn num_threads_is_read_after_the_command_name() {
        let stat = b"42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 3 0 123 456";
        assert_eq!(num_threads(stat), Some(3));
        let own = std::fs::read("/proc/self/stat").unwrap();
        assert!(num_threads(&own).is_some_and(|n| n >= 1));
        assert_eq!(num_threads(b"42 (x"), None);
    }

    /// The link count is two and one per thread: what `single` relies
    /// on. Other tests start and end threads meanwhile, so our own count
    /// is taken when `/proc/self/stat` shows the same before and after.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_task_directory_counts_threads() {
        use std::os::fd::AsRawFd;
        let mut sleep = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let theirs = std::fs::File::open(format!("/proc/{}/task", sleep.id())).unwrap();
        assert_eq!(super::links(theirs.as_raw_fd()), Some(3));
        let _ = sleep.kill();
        let _ = sleep.wait();

        let ours = std::fs::File::open("/proc/self/task").unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        let stable = (0..1000).find_map(|_| {
            let before = super::threads_in_stat()?;
            let links = super::links(ours.as_raw_fd())?;
            (super::threads_in_stat()? == before).then_some((before, links))
        });
        let (threads, links) = stable.expect("a steady thread count");
        assert!(threads >= 2);
        assert_eq!(links, threads + 2);
        drop(tx);
        let _ = t.join();
        assert_eq!(super::links(-1), None);
    }
}
