//! One multi-call binary with the misbehaving programs the tests need:
//! `muontrap_test_helper COMMAND [ARGS...]`. Every process it starts keeps
//! this binary's name in its command line, so leaks are easy to spot in /proc.

use std::io::{self, Write};
use std::process::exit;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: muontrap_test_helper COMMAND\n\
         \x20 print_bytes N            write N bytes of the test pattern (byte i = i % 251)\n\
         \x20 repeat TEXT N            write TEXT over and over, N bytes in all (0 = forever)\n\
         \x20 chatty LINES MS [err]    LINES lines (0 = forever) every MS ms, to stderr with 'err'\n\
         \x20 out_err OUT ERR          write OUT to stdout and ERR to stderr\n\
         \x20 kill_self SIGNUM         print 'bye' and kill itself with SIGNUM\n\
         \x20 ignore_sigterm N         ignore SIGTERM, fork N children that do too, sleep\n\
         \x20 fork_many N [exit]       fork N sleeping children, print their pids, sleep (or exit)\n\
         \x20 daemonize                double-fork a setsid grandchild that sleeps, print its pid, exit\n\
         \x20 alloc MIB                allocate and touch MIB mebibytes, print 'done', exit\n\
         \x20 fork_bomb DEPTH [exit]   a binary tree of 2^(DEPTH+1)-1 processes in new sessions and\n\
         \x20                          process groups whose leaves keep re-forking; prints 'ready' (then exits)\n\
         \x20 spin                     busy-loop forever\n\
         \x20 sleep                    sleep forever"
    );
    exit(2)
}

fn arg_num(args: &[String], i: usize) -> u64 {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage())
}

fn main() {
    // As a C program: a write to a pipe nobody reads any more ends it
    // quietly (SIGPIPE), not with a panic message on the BEAM's stderr
    // (std ignores SIGPIPE, so println! would panic on EPIPE).
    // SAFETY: SIG_DFL installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("print_bytes") => print_bytes(arg_num(&args, 1)),
        Some("repeat") => match args.get(1) {
            Some(text) if !text.is_empty() => repeat(text.as_bytes(), arg_num(&args, 2)),
            _ => usage(),
        },
        Some("chatty") => chatty(
            arg_num(&args, 1),
            arg_num(&args, 2),
            args.get(3).is_some_and(|s| s == "err"),
        ),
        Some("out_err") => {
            let (out, err) = (args.get(1), args.get(2));
            let (Some(out), Some(err)) = (out, err) else {
                usage()
            };
            write_all(&mut io::stdout(), out.as_bytes());
            write_all(&mut io::stderr(), err.as_bytes());
        }
        Some("kill_self") => {
            let sig = arg_num(&args, 1) as libc::c_int;
            write_all(&mut io::stdout(), b"bye\n");
            // SAFETY: raise() only sends a signal to this process.
            unsafe { libc::raise(sig) };
            exit(99)
        }
        Some("ignore_sigterm") => {
            // SAFETY: SIG_IGN is a valid disposition; inherited by the children.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            fork_children(arg_num(&args, 1));
            ready_and_sleep()
        }
        Some("fork_many") => {
            fork_children(arg_num(&args, 1));
            if args.get(2).is_some_and(|s| s == "exit") {
                return;
            }
            ready_and_sleep()
        }
        Some("daemonize") => daemonize(),
        Some("alloc") => {
            // Touch every page so the memory is really charged to the cgroup.
            let mib = arg_num(&args, 1) as usize;
            let mut blocks = Vec::with_capacity(mib);
            for _ in 0..mib {
                blocks.push(vec![1u8; 1 << 20]);
            }
            println!(
                "done {}",
                blocks.iter().map(|b| b[0] as usize).sum::<usize>()
            );
        }
        Some("fork_bomb") => fork_bomb(arg_num(&args, 1), args.get(2).is_some_and(|s| s == "exit")),
        Some("spin") => spin(),
        Some("sleep") => sleep_forever(),
        _ => usage(),
    }
}

fn write_all(w: &mut dyn Write, bytes: &[u8]) {
    if w.write_all(bytes).and_then(|_| w.flush()).is_err() {
        exit(1)
    }
}

fn print_bytes(n: u64) {
    // 251 is prime and coprime with every buffer size, so a lost or
    // duplicated chunk shifts the pattern and is caught by the comparison.
    let pattern: Vec<u8> = (0..251u32 * 256).map(|i| (i % 251) as u8).collect();
    let chunk = 251 * 256;
    let mut out = io::stdout().lock();
    let mut left = n;
    while left > 0 {
        let len = left.min(chunk as u64) as usize;
        if out.write_all(&pattern[..len]).is_err() {
            exit(1)
        }
        left -= len as u64;
    }
    if out.flush().is_err() {
        exit(1)
    }
}

/// Distinct text per command lets a test tell whose bytes it received.
fn repeat(text: &[u8], n: u64) {
    let block: Vec<u8> = text
        .iter()
        .copied()
        .cycle()
        .take(text.len() * 4096)
        .collect();
    let mut out = io::stdout().lock();
    let mut written = 0u64;
    while n == 0 || written < n {
        let len = if n == 0 {
            block.len()
        } else {
            (n - written).min(block.len() as u64) as usize
        };
        // Each block starts at a multiple of text.len(), so the stream is
        // TEXT repeated, cut at n.
        if out.write_all(&block[..len]).is_err() {
            exit(1)
        }
        written += len as u64;
    }
    if out.flush().is_err() {
        exit(1)
    }
}

fn chatty(lines: u64, interval_ms: u64, to_stderr: bool) {
    let mut i = 1u64;
    loop {
        let line = format!("line {i}\n");
        if to_stderr {
            write_all(&mut io::stderr(), line.as_bytes());
        } else {
            write_all(&mut io::stdout(), line.as_bytes());
        }
        if lines != 0 && i >= lines {
            return;
        }
        i += 1;
        if interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
}

fn fork_children(n: u64) {
    for _ in 0..n {
        // SAFETY: single-threaded here; the child only sleeps.
        match unsafe { libc::fork() } {
            0 => sleep_forever(),
            -1 => exit(3),
            pid => println!("{pid}"),
        }
    }
}

fn ready_and_sleep() -> ! {
    write_all(&mut io::stdout(), b"ready\n");
    sleep_forever()
}

fn daemonize() {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-int array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        exit(3)
    }
    // SAFETY: single-threaded; the children only call async-signal-safe functions.
    match unsafe { libc::fork() } {
        0 => unsafe {
            libc::setsid();
            match libc::fork() {
                0 => {
                    let pid = libc::getpid();
                    libc::write(fds[1], (&pid as *const i32).cast(), 4);
                    // Detach from the output pipe like a real daemon would.
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    libc::dup2(null, 1);
                    libc::dup2(null, 2);
                    loop {
                        libc::pause();
                    }
                }
                _ => libc::_exit(0),
            }
        },
        -1 => exit(3),
        child => {
            let mut pid: i32 = 0;
            // SAFETY: reads exactly 4 bytes into pid; waitpid on our own child.
            unsafe {
                libc::read(fds[0], (&mut pid as *mut i32).cast(), 4);
                libc::waitpid(child, std::ptr::null_mut(), 0);
            }
            println!("{pid}");
        }
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A bounded fork bomb that tries every escape: each process leaves the
/// parent's process group (odd nodes start a new session, even ones a new
/// group), and the leaves replace themselves with a fresh child every few
/// milliseconds, so their pids keep changing while the tree is killed.
fn fork_bomb(depth: u64, root_exits: bool) {
    let mut level = 0;
    let mut node = 0u64;
    while level < depth {
        let mut forked_both = true;
        for side in 0..2 {
            // SAFETY: single-threaded; the child continues this loop.
            match unsafe { libc::fork() } {
                0 => {
                    node = node * 2 + side;
                    level += 1;
                    // SAFETY: plain syscalls on our own process.
                    unsafe {
                        if node % 2 == 1 {
                            libc::setsid();
                        } else {
                            libc::setpgid(0, 0);
                        }
                    }
                    forked_both = false;
                    break;
                }
                -1 => exit(3),
                _ => {}
            }
        }
        if forked_both {
            // An inner node: its children carry on.
            if level == 0 {
                write_all(&mut io::stdout(), b"ready\n");
                if root_exits {
                    exit(0)
                }
            }
            sleep_forever()
        }
    }
    // A leaf: keep moving to a new pid.
    loop {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: single-threaded; the child continues the loop.
        match unsafe { libc::fork() } {
            0 => {}
            -1 => {}
            // SAFETY: _exit(2) ends this process without running destructors.
            _ => unsafe { libc::_exit(0) },
        }
    }
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
