//! End notices (docs/protocol.md, "End notices"; Linux only): one pipe
//! per BEAM on which supervisors announce that a command's EXIT is in its
//! channel, read by one Erlang port (`MuonTrap.Notices`).
//!
//! Why a port: a descriptor selected with `enif_select` wakes the BEAM's
//! poll thread, which then wakes a scheduler, for every event; a port's
//! descriptor read again and again moves to the pollset the schedulers
//! themselves wait on, so a notice wakes one thread and a burst of ends
//! wakes it once (docs/performance.md, round 14). The output pipes of a
//! `cmd/3` stay selected for their data; their end, which would wake the
//! poll thread again, is replaced by the notice (the supervisor keeps them
//! open until the channel closes).
//!
//! A notice is 8 bytes, an id this module gave the command's owner at its
//! hand-over: a hint, never data. The owner gets `{:muontrap_ended, id}`
//! and reads its own channel, so a stale or forged id only costs a read.
//! Ids are forgotten when the owner closes the command, lets go of it or
//! dies, so no notice reaches a process that no longer expects it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, OnceLock};

use rustler::{Encoder, Env, LocalPid, NifResult, OwnedBinary, Term};

mod atoms {
    rustler::atoms! { ok, error, unsupported, muontrap_ended }
}

/// The size of one notice: a big-endian `u64` id.
const NOTICE: usize = 8;

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

#[derive(Default)]
struct Table {
    /// The process that owns the port (`notices_attach`).
    dispatcher: Option<LocalPid>,
    /// Ids handed out and not yet noticed or forgotten, by owner.
    owners: HashMap<u64, LocalPid>,
    last: u64,
}

static PIPE: OnceLock<Pipe> = OnceLock::new();
static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn table() -> MutexGuard<'static, Option<Table>> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pipe, made on first use and kept for the BEAM's life: the port's
/// descriptor number then never comes to name another file.
fn pipe() -> io::Result<&'static Pipe> {
    if let Some(p) = PIPE.get() {
        return Ok(p);
    }
    // Both ends close-on-exec: a spawner gets the write end by dup2.
    let (read, write) = crate::sys::pipe()?;
    // A supervisor never waits for room: a full pipe (no dispatcher
    // reading, 8,192 notices behind) makes it end its command the way it
    // does without notices.
    crate::sys::set_nonblocking(&write)?;
    Ok(PIPE.get_or_init(|| Pipe { read, write }))
}

/// The write end, for a spawner's `NOTICE_FD`.
pub fn write_end() -> io::Result<RawFd> {
    Ok(pipe()?.write.as_raw_fd())
}

/// An id for `owner`'s command, to put in its HANDOVER; 0 (no notice)
/// when no dispatcher is attached or it is gone.
pub fn arm(env: Env, owner: LocalPid) -> u64 {
    let mut guard = table();
    let Some(t) = guard.as_mut() else { return 0 };
    match t.dispatcher {
        Some(d) if d.is_alive(env) => {
            t.last += 1;
            t.owners.insert(t.last, owner);
            t.last
        }
        _ => 0,
    }
}

/// Forgets `id` (0: none): its owner closed the command or let go of it.
pub fn forget(id: u64) {
    if id != 0 {
        if let Some(t) = table().as_mut() {
            t.owners.remove(&id);
        }
    }
}

/// `notices_attach() :: {:ok, fd, replaced} | {:error, :unsupported | posix}`:
/// the caller becomes the dispatcher and opens a port on `fd`, the
/// pipe's read end (unless it has one); `replaced` is true when another
/// process was the dispatcher (it died: commands started since did
/// without notices, or waited for their fallback).
#[rustler::nif]
pub fn notices_attach(env: Env) -> NifResult<Term> {
    if !cfg!(linux_native) {
        return Ok((atoms::error(), atoms::unsupported()).encode(env));
    }
    let read = match pipe() {
        Ok(p) => p.read.as_raw_fd(),
        Err(e) => return crate::stdio::error(env, &e),
    };
    let mut guard = table();
    let t = guard.get_or_insert_with(Table::default);
    let caller = env.pid();
    let replaced = t.dispatcher.is_some_and(|d| d != caller);
    t.dispatcher = Some(caller);
    Ok((atoms::ok(), read, replaced).encode(env))
}

/// `notices_dispatch(bytes) :: rest`: sends `{:muontrap_ended, id}` to
/// the owner of each whole notice in `bytes`, and returns the bytes of a
/// notice not complete yet (a read may end inside one).
#[rustler::nif]
pub fn notices_dispatch<'a>(env: Env<'a>, bytes: rustler::Binary<'a>) -> NifResult<Term<'a>> {
    let mut chunks = bytes.as_slice().chunks_exact(NOTICE);
    // Sent under the lock: an owner that forgets its id (closes) after
    // this has the message in its mailbox already and flushes it
    // (MuonTrap.Stdio.close/1), as it does select notices.
    if let Some(t) = table().as_mut() {
        for chunk in chunks.by_ref() {
            let mut id = [0u8; NOTICE];
            id.copy_from_slice(chunk);
            let id = u64::from_be_bytes(id);
            if let Some(owner) = t.owners.remove(&id) {
                let _ = env.send(&owner, (atoms::muontrap_ended(), id));
            }
        }
    }
    let rest = chunks.remainder();
    let mut bin = OwnedBinary::new(rest.len()).ok_or(rustler::Error::RaiseAtom("enomem"))?;
    bin.as_mut_slice().copy_from_slice(rest);
    Ok(bin.release(env).encode(env))
}
