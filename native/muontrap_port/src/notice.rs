//! The end notice (docs/protocol.md, "End notices"): a HANDOVER may ask
//! for one (a `cmd/3` or `stream!/3` on Linux). Once EXIT is in the
//! channel, the supervisor writes the notice's id, 8 bytes, to the BEAM's
//! notice pipe on `NOTICE_FD`, which it has from the spawner; the BEAM
//! reads it on a port whose wake-ups cost less than those of the output
//! pipes' end (the NIF's `notices.rs` says why). So the output pipes are
//! then kept open until the channel closes: their end would wake the BEAM
//! a second time. Every process of the command is gone by then (the
//! supervisor is their subreaper), so nothing else writes to them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The id the HANDOVER asked for; 0 for none.
static ID: AtomicU64 = AtomicU64::new(0);

/// Notes the id a HANDOVER asked for (0: none).
pub fn arm(id: u64) {
    ID.store(id, Ordering::Relaxed);
}

/// Whether the HANDOVER asked for a notice (a `cmd/3` or `stream!/3`).
pub fn asked() -> bool {
    ID.load(Ordering::Relaxed) != 0
}

/// Once EXIT is written: the notice, if one was asked for. True when it
/// went out whole; false without one, and when the pipe is full (nobody
/// reads it) or gone, after which the output pipes must close as without
/// a notice.
pub fn send() -> bool {
    let id = ID.swap(0, Ordering::Relaxed);
    id != 0 && write(id)
}

#[cfg(linux_native)]
fn write(id: u64) -> bool {
    let bytes = id.to_be_bytes();
    // SAFETY: write(2) of our stack buffer to NOTICE_FD, which the
    // spawner always has open on the notice pipe (the NIF places it there
    // and every fd cleanup spares it). A pipe write of 8 bytes is atomic:
    // whole or not at all (non-blocking: EAGAIN when full).
    let n = unsafe {
        libc::write(
            muontrap_wire::channel::NOTICE_FD,
            bytes.as_ptr().cast(),
            bytes.len(),
        )
    };
    n == bytes.len() as isize
}

#[cfg(not(linux_native))]
fn write(_id: u64) -> bool {
    false
}
