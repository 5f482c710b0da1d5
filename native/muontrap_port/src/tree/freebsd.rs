//! FreeBSD's reaper, for the same guarantee as Linux without cgroups:
//! `procctl(2)` makes us the reaper of everything the program starts,
//! kills every descendant (`setsid` ones included), and sets the child's
//! parent-death signal. Type-checked only (docs/portability.md).
//!
//! The libc crate has the commands but not the two structs, so they are
//! declared here as `sys/procctl.h` does.

/// `struct procctl_reaper_kill`.
#[repr(C)]
struct ReaperKill {
    rk_sig: libc::c_int,
    rk_flags: libc::c_uint,
    rk_subtree: libc::pid_t,
    rk_killed: libc::c_uint,
    rk_fpid: libc::pid_t,
    rk_pad0: [libc::c_uint; 15],
}

fn procctl(cmd: libc::c_int, data: *mut libc::c_void) -> nix::Result<()> {
    // SAFETY: procctl(2) on ourselves (P_PID, our pid); `data` is what
    // `cmd` takes, a live struct or int of the caller's.
    let r = unsafe { libc::procctl(libc::P_PID, libc::getpid() as _, cmd, data) };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

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

/// `PROC_PDEATHSIG_CTL` on the calling process (the child before exec).
pub fn parent_death_signal(sig: libc::c_int) {
    let mut s = sig;
    let _ = procctl(
        libc::PROC_PDEATHSIG_CTL,
        (&mut s as *mut libc::c_int).cast(),
    );
}
