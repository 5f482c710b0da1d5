//! `--umask`, `--rlimit` and `--nice` in the child, after the stdio setup
//! and before the privilege drop (so a privileged port can lower the nice
//! value or raise a hard limit for an unprivileged program). The values
//! were parsed before the clone; the child reads them and makes syscalls,
//! nothing else.

use super::Attrs;
use muontrap_command::Rlimit;

use super::Stage;

/// The kernel's `struct rlimit64`, what `prlimit64(2)` takes on every
/// architecture (`setrlimit(2)` is missing on some, e.g. riscv32).
#[cfg(linux_native)]
#[repr(C)]
struct Rlimit64 {
    cur: u64,
    max: u64,
}

fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

#[cfg(linux_native)]
fn set_rlimit(r: &Rlimit) -> Result<(), i32> {
    let new = Rlimit64 {
        cur: r.soft,
        max: r.hard,
    };
    let resource = r.resource.raw().ok_or(libc::EINVAL)?;
    // SAFETY: prlimit64(2) on ourselves (pid 0), reading one struct from
    // the stack; no old value is written back (null).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            &new as *const Rlimit64,
            std::ptr::null_mut::<Rlimit64>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// setrlimit(2), where `rlim_t` may be narrower or signed (FreeBSD's is
/// i64, its infinity `i64::MAX`). A resource the system lacks is EINVAL
/// (validation refused it before).
#[cfg(not(linux_native))]
fn set_rlimit(r: &Rlimit) -> Result<(), i32> {
    let limit = |v: u64| -> libc::rlim_t {
        if v == muontrap_command::INFINITY {
            libc::RLIM_INFINITY
        } else {
            libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY)
        }
    };
    let new = libc::rlimit {
        rlim_cur: limit(r.soft),
        rlim_max: limit(r.hard),
    };
    let resource = r.resource.raw().ok_or(libc::EINVAL)?;
    // SAFETY: setrlimit(2) reads one struct from the stack.
    #[allow(clippy::useless_conversion)]
    let rc = unsafe { libc::setrlimit(resource.try_into().map_err(|_| libc::EINVAL)?, &new) };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Applies `a` in order (umask, rlimits, nice). On failure: the stage, the
/// errno and which rlimit (its index) failed.
pub(super) fn apply(a: &Attrs) -> Result<(), (Stage, i32, u8)> {
    if let Some(mask) = a.umask {
        // SAFETY: umask(2) takes an integer and cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    for (i, r) in a.rlimits.iter().enumerate() {
        // At most 16 (each resource once).
        set_rlimit(r).map_err(|e| (Stage::Rlimit, e, i as u8))?;
    }
    if let Some(n) = a.nice {
        // SAFETY: setpriority(2) takes integers. PRIO_PROCESS with who 0
        // is the calling process: the child alone (no CLONE_THREAD).
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
            return Err((Stage::Nice, errno(), 0));
        }
    }
    Ok(())
}

/// What the failed step tried to set, for the error message:
/// `-5` (nice), `nofile to 1048576:1048576` (rlimit).
pub(super) fn refused_value(a: &Attrs, stage: Stage, detail: u8) -> Option<String> {
    match stage {
        Stage::Nice => a.nice.map(|n| n.to_string()),
        Stage::Rlimit => a.rlimits.get(usize::from(detail)).map(Rlimit::to_string),
        _ => None,
    }
}
