//! A command as the BEAM owns it: the pipes its output (and, when asked
//! for, a separate stderr) goes into and its input comes from, and its
//! channel to its supervisor (`channel`), through which the supervisor
//! receives the other ends. Used by `MuonTrap.cmd/3`,
//! `MuonTrap.stream!/3` and `MuonTrap.Daemon` alike.
//!
//! The command reads and writes the pipes directly and the owner pulls and
//! pushes with `stdio_read`/`stdio_write`, so no process relays the bytes
//! and each pipe's capacity is its flow-control window.
//!
//! Waiting (for frames, for output, for room in stdin) is
//! `enif_select`: the owner gets `{:select, stdio, ref, :ready_input}` (or
//! `:ready_output` for stdin) and calls again. Each pipe is selected with
//! the ref the owner passes for it, so the notices tell them apart.

mod channel;
mod resource;

use std::ffi::c_void;
use std::os::fd::{AsRawFd, OwnedFd};

use rustler::sys::{ErlNifEnv, ERL_NIF_SELECT_READ, ERL_NIF_SELECT_WRITE};
use rustler::types::binary::OwnedBinary;
use rustler::{Atom, Binary, Encoder, Env, Error, NifResult, Term};

use crate::listeners::{self, Listeners};
use crate::object::Object;
use crate::pipe::Ours;
use crate::{errno, fdpass, pipe};
pub use resource::Selectable;
use resource::{lock, release, select};

pub use channel::Progress;
pub use resource::register;

mod atoms {
    rustler::atoms! { eof, wait, closed, output, stderr, stdin }
}

// Role bytes of the descriptors the port binary receives (docs/protocol.md).
use muontrap_wire::handover::{
    MAX_INLINE, ROLE_COMMAND, ROLE_LISTEN, ROLE_OUTPUT, ROLE_STDERR, ROLE_STDIN,
};

pub struct State {
    /// The BEAM's end of the command's channel (`channel`), once spawned.
    channel: Selectable,
    /// What the channel said so far: its frames, the supervisor's pid.
    progress: Progress,
    /// Read end of the captured output (stdout, or the merged stream).
    output: Selectable,
    /// Read end of a separate stderr.
    stderr: Selectable,
    /// Write end of the command's stdin.
    stdin: Selectable,
    /// Descriptors for the supervisor, with their roles, until handed over.
    pending: Vec<(u8, OwnedFd)>,
    /// The command value's bytes, until handed over in the HANDOVER frame
    /// itself (a longer one is a pending COMMAND memfd instead).
    command: Option<Vec<u8>>,
    handed_over: bool,
    /// Who gets the command when its owner dies (`stdio_heir`).
    heir: Option<rustler::sys::ErlNifPid>,
    /// The owner's monitor.
    monitor: Option<rustler::sys::ErlNifMonitor>,
    /// The end notice's id (`crate::notices`), 0 for none.
    notice: u64,
}

impl State {
    fn new() -> State {
        State {
            channel: Selectable::default(),
            progress: Progress::default(),
            output: Selectable::default(),
            stderr: Selectable::default(),
            stdin: Selectable::default(),
            pending: Vec::new(),
            command: None,
            handed_over: false,
            heir: None,
            monitor: None,
            notice: 0,
        }
    }

    fn reader(&mut self, stream: Atom) -> NifResult<&mut Selectable> {
        if stream == atoms::output() {
            Ok(&mut self.output)
        } else if stream == atoms::stderr() {
            Ok(&mut self.stderr)
        } else {
            Err(Error::BadArg)
        }
    }

    /// A pipe for `stream` (each at most once): our end kept, theirs
    /// pending for the supervisor.
    fn add_pipe(&mut self, stream: Atom, window: usize) -> Result<(), OpenFailure> {
        let (role, ours) = if stream == atoms::output() {
            (ROLE_OUTPUT, Ours::Read)
        } else if stream == atoms::stderr() {
            (ROLE_STDERR, Ours::Read)
        } else if stream == atoms::stdin() {
            (ROLE_STDIN, Ours::Write)
        } else {
            return Err(OpenFailure::BadArg);
        };
        if self.pending.iter().any(|(r, _)| *r == role) {
            return Err(OpenFailure::BadArg);
        }
        let (mine, theirs) = pipe::make(window, ours).map_err(OpenFailure::Os)?;
        let slot = match role {
            ROLE_OUTPUT => &mut self.output,
            ROLE_STDERR => &mut self.stderr,
            _ => &mut self.stdin,
        };
        *slot = Selectable::new(mine);
        self.pending.push((role, theirs));
        Ok(())
    }

    /// The command value in a memfd, pending as COMMAND.
    fn command_in_memfd(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.pending.push((ROLE_COMMAND, pipe::memfd_with(bytes)?));
        Ok(())
    }

    /// A duplicate of each of a daemon's listening sockets, in order.
    fn add_listeners(&mut self, listeners: &Listeners) -> Result<(), OpenFailure> {
        for fd in &listeners.fds {
            let dup = listeners::dup(fd.as_raw_fd()).map_err(OpenFailure::Os)?;
            self.pending.push((ROLE_LISTEN, dup));
        }
        Ok(())
    }

    /// Closes the pipes (idempotent).
    pub fn close_pipes(&mut self, env: *mut ErlNifEnv, obj: *mut c_void) {
        self.pending.clear();
        self.command = None;
        for s in [&mut self.output, &mut self.stderr, &mut self.stdin] {
            release(env, obj, s);
        }
    }

    /// Closes every descriptor (idempotent); nothing can start after.
    /// The pipes go first: the supervisor of a command with an end notice
    /// holds their other ends until the channel closes, and their end
    /// must find them no longer selected.
    pub fn close_all(&mut self, env: *mut ErlNifEnv, obj: *mut c_void) {
        // Nothing is left for the owner's death to do: no down callback,
        // and no heir to wake (a cmd/3's caller exits right after).
        self.heir = None;
        if let Some(mon) = self.monitor.take() {
            // SAFETY: obj is live and of our type, and mon a monitor it holds.
            unsafe { rustler::sys::enif_demonitor_process(env, obj, &mon) };
        }
        self.handed_over = true;
        self.pending.clear();
        self.command = None;
        self.forget_notice();
        for s in [
            &mut self.output,
            &mut self.stderr,
            &mut self.stdin,
            &mut self.channel,
        ] {
            release(env, obj, s);
        }
    }

    /// No end notice for this command any more (idempotent).
    pub fn forget_notice(&mut self) {
        crate::notices::forget(std::mem::take(&mut self.notice));
    }
}

/// `stdio_open`'s pipes for `streams` and duplicates of `listeners`.
fn fill(
    state: &mut State,
    window: usize,
    streams: Vec<Atom>,
    listeners: Option<&Listeners>,
) -> Result<(), OpenFailure> {
    for stream in streams {
        state.add_pipe(stream, window)?;
    }
    if let Some(l) = listeners {
        state.add_listeners(l)?;
    }
    if state.pending.len() > fdpass::MAX_FDS {
        return Err(OpenFailure::BadArg);
    }
    Ok(())
}

/// Why `stdio_open` could not fill in its state.
enum OpenFailure {
    /// A bad or repeated stream, or too many descriptors.
    BadArg,
    /// The OS refused a pipe or a dup.
    Os(std::io::Error),
}

pub(crate) fn error<'a>(env: Env<'a>, err: &std::io::Error) -> NifResult<Term<'a>> {
    let reason = Atom::from_str(env, errno::atom_name(err))?;
    Ok((rustler::types::atom::error(), reason).encode(env))
}

fn closed(env: Env) -> Term {
    (rustler::types::atom::error(), atoms::closed()).encode(env)
}

/// `stdio_open(window, streams, listeners | nil) :: stdio | {:error, posix}`:
/// for each of `streams` (`:output`, `:stderr`, `:stdin`), a pipe of
/// about `window` bytes; all closed if the caller dies. The supervisor
/// also gets a duplicate of each of a daemon's `listeners`, in order,
/// after the pipes. `stdio_spawn`, `stdio_command` and `stdio_hand_over`
/// start the command.
#[rustler::nif]
pub fn stdio_open(
    env: Env,
    window: usize,
    streams: Vec<Atom>,
    listeners: Option<Object<Listeners>>,
) -> NifResult<Term> {
    let mut state = State::new();
    let filled = fill(&mut state, window, streams, listeners.as_deref());
    match filled {
        Ok(()) => {}
        Err(OpenFailure::BadArg) => return Err(Error::BadArg),
        Err(OpenFailure::Os(e)) => return error(env, &e),
    }
    resource::new_resource(env, state)
}

/// `stdio_command(stdio, options) :: :ok | {:error, posix | :closed}`: the
/// command the supervisor is to run, decoded from validated options
/// (`muontrap_command::Command`, one rustler decoder per field type) and
/// handed over with the descriptors (`stdio_hand_over`) in binary form:
/// in the HANDOVER frame itself when it is short (`MAX_INLINE`), else in
/// a memfd, which no socket buffer bounds (arguments may be megabytes).
/// A command with a cgroup gets the host's layout too
/// (`cgroup_fs::hand_layout`).
#[rustler::nif]
pub fn stdio_command<'a>(
    env: Env<'a>,
    stdio_term: Term<'a>,
    command: muontrap_command::Command,
) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio_term)?;
    let mut state = lock(obj);
    if state.handed_over {
        return Ok(closed(env));
    }
    if state.command.is_some()
        || state.pending.iter().any(|(role, _)| *role == ROLE_COMMAND)
        || state.pending.len() > fdpass::MAX_FDS
    {
        return Err(Error::BadArg);
    }
    let mut command = command;
    crate::cgroup_fs::hand_layout(&mut command, crate::cgroup_fs::layout);
    // The BEAM's directory of the moment (File.cd/1 changes the OS
    // process's): a resident spawner's is that of its own start. Read
    // here, a syscall, rather than by File.cwd!/0, a dirty IO call.
    if command.cd.is_none() {
        match std::env::current_dir() {
            Ok(dir) => command.cd = Some(muontrap_command::Bytes(dir.into_os_string())),
            Err(e) => return error(env, &e),
        }
    }
    let bytes = muontrap_command::wire::encode(&command);
    if bytes.len() <= MAX_INLINE {
        state.command = Some(bytes);
    } else if let Err(e) = state.command_in_memfd(&bytes) {
        return error(env, &e);
    }
    Ok(rustler::types::atom::ok().encode(env))
}

/// `stdio_read(stdio, stream, max, ref) :: binary | :eof | :wait | {:error, posix}`:
/// up to `max` bytes of `stream` (`:output` or `:stderr`). `:wait` means
/// the pipe is empty and `{:select, stdio, ref, :ready_input}` will come
/// when it is not. With `ref` nil, a read after the end (EXIT with an end
/// notice: no process can write any more): an empty pipe is `:eof`, found
/// without a read and never selected.
#[rustler::nif]
pub fn stdio_read<'a>(
    env: Env<'a>,
    stdio_term: Term<'a>,
    stream: Atom,
    max: usize,
    select_ref: Term<'a>,
) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio_term)?;
    let mut state = lock(obj);
    let reader = state.reader(stream)?;
    let Some(fd) = reader.raw() else {
        return Ok(atoms::eof().encode(env));
    };
    let after_end = select_ref
        .decode::<Atom>()
        .is_ok_and(|a| a == rustler::types::atom::nil());
    let want = match pipe::queued_bytes(fd) {
        0 if after_end => return Ok(atoms::eof().encode(env)),
        queued => pipe::read_size_of(queued, max),
    };
    let mut bin = OwnedBinary::new(want).ok_or(Error::RaiseAtom("enomem"))?;
    match pipe::read(fd, bin.as_mut_slice()) {
        Ok(0) => Ok(atoms::eof().encode(env)),
        Ok(n) => {
            if n < want && !bin.realloc(n) {
                return Err(Error::RaiseAtom("enomem"));
            }
            Ok(bin.release(env).encode(env))
        }
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && after_end => {
            Ok(atoms::eof().encode(env))
        }
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
            select(env, obj, reader, ERL_NIF_SELECT_READ, select_ref)?;
            Ok(atoms::wait().encode(env))
        }
        Err(e) => error(env, &e),
    }
}

/// `stdio_write(stdio, data, ref) :: non_neg_integer | :wait | {:error, posix | :closed}`:
/// writes what fits of `data` (at most the pipe's free space) into the
/// command's stdin and returns how many bytes that was. `:wait` means the
/// pipe is full and `{:select, stdio, ref, :ready_output}` will come when
/// it is not; `{:error, :epipe}` that nothing reads it any more;
/// `{:error, :closed}` after `stdio_close_stdin`.
#[rustler::nif]
pub fn stdio_write<'a>(
    env: Env<'a>,
    stdio_term: Term<'a>,
    data: Binary<'a>,
    select_ref: Term<'a>,
) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio_term)?;
    let mut state = lock(obj);
    let Some(fd) = state.stdin.raw() else {
        return Ok(closed(env));
    };
    match pipe::write(fd, data.as_slice()) {
        Ok(n) => Ok(n.encode(env)),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
            select(env, obj, &mut state.stdin, ERL_NIF_SELECT_WRITE, select_ref)?;
            Ok(atoms::wait().encode(env))
        }
        Err(e) => error(env, &e),
    }
}

/// `stdio_close_stdin(stdio) :: :ok`: closes the command's stdin, so it
/// reads EOF (idempotent).
#[rustler::nif]
pub fn stdio_close_stdin(env: Env, stdio_term: Term) -> NifResult<Atom> {
    let obj = resource::get(stdio_term)?;
    let mut state = lock(obj);
    release(env.as_c_arg(), obj, &mut state.stdin);
    Ok(rustler::types::atom::ok())
}

/// `stdio_close(stdio) :: :ok`: closes every descriptor (idempotent).
#[rustler::nif]
pub fn stdio_close(env: Env, stdio_term: Term) -> NifResult<Atom> {
    let obj = resource::get(stdio_term)?;
    lock(obj).close_all(env.as_c_arg(), obj);
    Ok(rustler::types::atom::ok())
}
