//! FreeBSD's reaper, for the same guarantee as Linux without cgroups:
//! `procctl(2)` makes us the reaper of everything the program starts,
//! kills every descendant (`setsid` ones included), and sets the child's
//! parent-death signal. Type-checked only (docs/portability.md).
//!
//! The libc crate (as of 0.2.191) has `procctl`, `P_PID` and the `PROC_*`
//! commands but not `struct procctl_reaper_kill`, so it is declared here.
//! Checked against FreeBSD's `sys/sys/procctl.h` (freebsd/freebsd-src at
//! 95f8a3378fb8) and the kernel's use of it in `sys/kern/kern_procctl.c`
//! (at 008b2e65442a), with `idtype_t` from `sys/sys/wait.h` (at
//! d28066d8954a): the fields below in the header's order and types
//! (`int`, `u_int`, `pid_t`, `u_int`, `pid_t`, `u_int[15]`; `pid_t` is
//! `int32_t`), 80 bytes, which the kernel copies in and out whole.

/// `struct procctl_reaper_kill`. `rk_flags` 0 (neither
/// `REAPER_KILL_CHILDREN` 0x1 nor `REAPER_KILL_SUBTREE` 0x2) means every
/// descendant, the only use here, so the flags are not declared.
#[repr(C)]
struct ReaperKill {
    rk_sig: libc::c_int,
    rk_flags: libc::c_uint,
    rk_subtree: libc::pid_t,
    rk_killed: libc::c_uint,
    rk_fpid: libc::pid_t,
    rk_pad0: [libc::c_uint; 15],
}

// Five 4-byte fields and 15 4-byte pads, no padding: 80 bytes, 4-aligned
// (sys/sys/procctl.h).
const _: () = assert!(std::mem::size_of::<ReaperKill>() == 80);
const _: () = assert!(std::mem::align_of::<ReaperKill>() == 4);

// libc's values, held to the header's: PROC_REAP_ACQUIRE 2, PROC_REAP_KILL
// 6, PROC_PDEATHSIG_CTL 11 (sys/sys/procctl.h); P_PID the first of
// `idtype_t` (sys/sys/wait.h).
const _: () = assert!(
    libc::PROC_REAP_ACQUIRE == 2
        && libc::PROC_REAP_KILL == 6
        && libc::PROC_PDEATHSIG_CTL == 11
        && libc::P_PID == 0
);

fn procctl(cmd: libc::c_int, data: *mut libc::c_void) -> nix::Result<()> {
    // SAFETY: procctl(2) on ourselves (P_PID with our pid, an `id_t`:
    // int64_t); `data` is what `cmd` takes, a live struct or int of the
    // caller's, or null.
    let r = unsafe { libc::procctl(libc::P_PID, libc::id_t::from(libc::getpid()), cmd, data) };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

/// `PROC_REAP_ACQUIRE` takes no data: the kernel refuses a non-null
/// pointer (EINVAL).
pub fn acquire_reaper() -> nix::Result<()> {
    procctl(libc::PROC_REAP_ACQUIRE, std::ptr::null_mut())
}

/// `PROC_REAP_KILL`: `sig` to every descendant, whatever its session or
/// group. ESRCH (none left) is no error.
pub fn signal_descendants(sig: libc::c_int) {
    let mut k = ReaperKill {
        rk_sig: sig,
        rk_flags: 0,
        rk_subtree: 0,
        rk_killed: 0,
        rk_fpid: -1,
        rk_pad0: [0; 15],
    };
    let _ = procctl(libc::PROC_REAP_KILL, (&mut k as *mut ReaperKill).cast());
}

/// `PROC_PDEATHSIG_CTL` on the calling process (the child before exec):
/// the kernel copies in one `int`, the signal number, and accepts only the
/// caller itself as the target.
pub fn parent_death_signal(sig: libc::c_int) {
    let mut s = sig;
    let _ = procctl(
        libc::PROC_PDEATHSIG_CTL,
        (&mut s as *mut libc::c_int).cast(),
    );
}
