//! The vfork-style clone: the child runs on a stack of its own while we
//! are suspended, sharing our memory until it execs or exits.

use nix::errno::Errno;
use nix::unistd::Pid;

use super::child::{child_entry, ChildArgs};

#[cfg(not(linux_native))]
pub(super) use portable::{clone_vfork, ChildStack};

/// Stack for the child between clone and exec: it runs `child` and
/// `execvp` (which builds paths on the stack), nothing else. Below it a
/// guard page turns an overflow into a fault instead of silent corruption
/// of our memory.
///
/// One per process, mapped once (`ChildStack::get`) and never unmapped:
/// a clone returns only once its child has exec'd or exited, so starts
/// never share it, and a mapping per start cost an `mmap`, an `mprotect`
/// and a `munmap` (with its TLB flush) on each command's critical path
/// (docs/performance.md, round 14). The spawner maps it before its first
/// fork, so every supervisor inherits it untouched: its pages are faulted
/// in by the child that uses them, as with a fresh mapping.
#[cfg(linux_native)]
pub(super) struct ChildStack {
    base: usize,
    len: usize,
}

#[cfg(linux_native)]
const CHILD_STACK: usize = 256 * 1024;
#[cfg(linux_native)]
const GUARD: usize = 4096;

#[cfg(linux_native)]
static STACK: std::sync::OnceLock<ChildStack> = std::sync::OnceLock::new();

#[cfg(linux_native)]
impl ChildStack {
    /// This process's child stack, mapped on first use.
    pub(super) fn get() -> nix::Result<&'static ChildStack> {
        if let Some(stack) = STACK.get() {
            return Ok(stack);
        }
        let stack = ChildStack::map()?;
        // Single-threaded: nobody else initialised it meanwhile.
        Ok(STACK.get_or_init(|| stack))
    }

    fn map() -> nix::Result<ChildStack> {
        let len = CHILD_STACK + GUARD;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let stack = ChildStack {
            base: base as usize,
            len,
        };
        // SAFETY: the lowest page of the mapping we own (the stack grows down).
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            return Err(Errno::last());
        }
        Ok(stack)
    }

    /// Gives back the pages a clone's child touched (the mapping stays):
    /// a supervisor that lives on (a daemon's) would otherwise keep them,
    /// 8 KB or so of every idle daemon's memory.
    pub(super) fn release_pages(&self) {
        // SAFETY: MADV_DONTNEED on our own private anonymous mapping, above
        // its guard page; no child uses it (the clone has returned), and
        // the next one finds zeroed pages, as in a fresh mapping.
        unsafe {
            libc::madvise(
                (self.base + GUARD) as *mut libc::c_void,
                self.len - GUARD,
                libc::MADV_DONTNEED,
            )
        };
    }

    /// The initial stack pointer: the top of the mapping, 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        // `len` is page-aligned: one past the end of our own mapping.
        (self.base + self.len) as *mut libc::c_void
    }
}

#[cfg(linux_native)]
impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `map`, which no
        // child uses: only a stack that lost the race to `STACK`, never
        // used, is dropped (the static one never is).
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// Runs `spawn` (a clone or fork that returns the raw pid) with every
/// signal blocked, then restores our mask. The child starts with that full
/// mask, so no handler of ours runs in it (on Linux, in the memory it
/// shares with us) before it resets its dispositions and unblocks
/// (`child`). The pid becomes a `Result` before the mask is restored, so
/// `errno` is still the spawn's.
fn with_all_signals_blocked(spawn: impl FnOnce() -> libc::pid_t) -> nix::Result<Pid> {
    // SAFETY: sigset_t is plain data (all-zero is a valid empty set), and
    // sigfillset/sigprocmask only read and write these stack-local sets.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    let pid = spawn();
    let result = if pid < 0 {
        Err(Errno::last())
    } else {
        Ok(Pid::from_raw(pid))
    };
    // SAFETY: restores the mask saved above, a set of our own stack.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}

/// `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)`: returns once the child has
/// exec'd or exited.
#[cfg(linux_native)]
pub(super) fn clone_vfork(stack: &ChildStack, args: &ChildArgs) -> nix::Result<Pid> {
    with_all_signals_blocked(|| {
        // SAFETY: the child runs `child_entry` on its own stack and only
        // makes raw syscalls on data prepared before this call (which
        // outlives it, since CLONE_VFORK suspends us until the child execs
        // or `_exit`s); it never returns into our frames and allocates
        // nothing.
        unsafe {
            libc::clone(
                child_entry,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::from_ref(args).cast_mut().cast(),
            )
        }
    })
}

/// Without clone (macOS, FreeBSD, the `portable` build): a plain fork. The
/// child has its own copy of our memory, so `ChildArgs` stays valid in it;
/// we return at once, and the child's exec or failure is read from the
/// report pipe as after the clone.
#[cfg(not(linux_native))]
mod portable {
    use nix::unistd::Pid;

    use super::{child_entry, with_all_signals_blocked, ChildArgs};

    pub(in crate::spawn) struct ChildStack;

    impl ChildStack {
        pub(in crate::spawn) fn get() -> nix::Result<&'static ChildStack> {
            Ok(&ChildStack)
        }

        pub(in crate::spawn) fn release_pages(&self) {}
    }

    pub(in crate::spawn) fn clone_vfork(_stack: &ChildStack, args: &ChildArgs) -> nix::Result<Pid> {
        with_all_signals_blocked(|| {
            // SAFETY: we are single-threaded, so the child may run
            // anything; it runs `child_entry`, which execs or `_exit`s,
            // never returns.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                child_entry(std::ptr::from_ref(args).cast_mut().cast());
                // SAFETY: not reached (child_entry never returns); _exit(2).
                unsafe { libc::_exit(127) };
            }
            pid
        })
    }
}
