//! A command's stdio as the BEAM owns it: the pipes its output (and, when
//! asked for, a separate stderr) goes into and its input comes from, and
//! the listening socket through which the port binary receives the other
//! ends (`handover`). Used by `MuonTrap.cmd/3`, `MuonTrap.stream!/3` and
//! `MuonTrap.Daemon` alike.
//!
//! The command reads and writes the pipes directly and the owner pulls and
//! pushes with `stdio_read`/`stdio_write`, so no process relays the bytes
//! and each pipe's capacity is its flow-control window.
//!
//! Waiting (for the port to connect, for output, for room in stdin) is
//! `enif_select`: the owner gets `{:select, stdio, ref, :ready_input}` (or
//! `:ready_output` for stdin) and calls again. Each pipe is selected with
//! the ref the owner passes for it, so the notices tell them apart.

mod resource;

use std::ffi::c_void;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustler::sys::{ErlNifEnv, ERL_NIF_SELECT_READ, ERL_NIF_SELECT_WRITE};
use rustler::types::binary::OwnedBinary;
use rustler::{Atom, Binary, Encoder, Env, Error, NifResult, ResourceArc, Term};

use crate::listeners::{self, Listeners};
use crate::pipe::Ours;
use crate::{errno, handover, pipe};
use resource::{lock, release, select, Selectable};

pub use resource::register;

mod atoms {
    rustler::atoms! { eof, wait, closed, output, stderr, stdin }
}

// Role bytes of the descriptors the port binary receives (docs/protocol.md).
use muontrap_wire::handover::{ROLE_COMMAND, ROLE_LISTEN, ROLE_OUTPUT, ROLE_STDERR, ROLE_STDIN};

pub struct State {
    /// Where the port binary connects; closed once it has its descriptors.
    listener: Selectable,
    /// Read end of the captured output (stdout, or the merged stream).
    output: Selectable,
    /// Read end of a separate stderr.
    stderr: Selectable,
    /// Write end of the command's stdin.
    stdin: Selectable,
    /// Descriptors for the port binary, with their roles, until handed over.
    pending: Vec<(u8, OwnedFd)>,
    handed_over: bool,
}

impl State {
    fn new(listener: OwnedFd) -> State {
        State {
            listener: Selectable::new(listener),
            output: Selectable::default(),
            stderr: Selectable::default(),
            stdin: Selectable::default(),
            pending: Vec::new(),
            handed_over: false,
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
    /// pending for the port binary.
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

    /// A duplicate of each of a daemon's listening sockets, in order.
    fn add_listeners(&mut self, listeners: &Listeners) -> Result<(), OpenFailure> {
        for fd in &listeners.fds {
            let dup = listeners::dup(fd.as_raw_fd()).map_err(OpenFailure::Os)?;
            self.pending.push((ROLE_LISTEN, dup));
        }
        Ok(())
    }

    /// Closes every descriptor (idempotent).
    pub fn close_all(&mut self, env: *mut ErlNifEnv, obj: *mut c_void) {
        self.pending.clear();
        for s in [
            &mut self.listener,
            &mut self.output,
            &mut self.stderr,
            &mut self.stdin,
        ] {
            release(env, obj, s);
        }
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
    if state.pending.len() > handover::MAX_FDS {
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

fn error<'a>(env: Env<'a>, err: &std::io::Error) -> NifResult<Term<'a>> {
    let reason = Atom::from_str(env, errno::atom_name(err))?;
    Ok((rustler::types::atom::error(), reason).encode(env))
}

fn closed(env: Env) -> Term {
    (rustler::types::atom::error(), atoms::closed()).encode(env)
}

/// `stdio_open(window, streams, listeners | nil) :: {stdio, socket_name} | {:error, posix}`:
/// a listener for the port binary and, for each of `streams` (`:output`,
/// `:stderr`, `:stdin`), a pipe of about `window` bytes; all closed if the
/// caller dies. The port also gets a duplicate of each of a daemon's
/// `listeners`, in order, after the pipes.
#[rustler::nif]
pub fn stdio_open(
    env: Env,
    window: usize,
    streams: Vec<Atom>,
    listeners: Option<ResourceArc<Listeners>>,
) -> NifResult<Term> {
    let (listener, name) = match handover::listen() {
        Ok(l) => l,
        Err(e) => return error(env, &e),
    };
    let mut state = State::new(listener);
    let filled = fill(&mut state, window, streams, listeners.as_deref());
    match filled {
        Ok(()) => {}
        Err(OpenFailure::BadArg) => return Err(Error::BadArg),
        Err(OpenFailure::Os(e)) => return error(env, &e),
    }
    Ok((resource::new_resource(env, state)?, name).encode(env))
}

/// `stdio_command(stdio, options) :: :ok | {:error, posix | :closed}`: the
/// command the port binary is to run, decoded from validated options
/// (`muontrap_command::Command`, one rustler decoder per field type) and
/// handed over with the descriptors, in binary form, in a memfd: no
/// socket buffer bounds its size (arguments may be megabytes). A command
/// with a cgroup gets the host's layout too (`cgroup_fs::hand_layout`).
#[rustler::nif]
pub fn stdio_command<'a>(
    env: Env<'a>,
    stdio_term: Term<'a>,
    command: muontrap_command::Command,
) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio_term)?;
    let mut state = lock(obj);
    if state.handed_over || state.listener.raw().is_none() {
        return Ok(closed(env));
    }
    if state.pending.iter().any(|(role, _)| *role == ROLE_COMMAND)
        || state.pending.len() > handover::MAX_FDS
    {
        return Err(Error::BadArg);
    }
    let mut command = command;
    crate::cgroup_fs::hand_layout(&mut command, crate::cgroup_fs::layout);
    let bytes = muontrap_command::wire::encode(&command);
    match pipe::memfd_with(&bytes) {
        Ok(fd) => {
            state.pending.push((ROLE_COMMAND, fd));
            Ok(rustler::types::atom::ok().encode(env))
        }
        Err(e) => error(env, &e),
    }
}

/// `stdio_handover(stdio, port_os_pid, ref) :: :ok | :wait | {:error, reason}`:
/// accepts the port binary's connection (peers with another pid are
/// dropped) and sends it the descriptors. `:wait` means nobody has
/// connected yet: `{:select, stdio, ref, :ready_input}` comes when someone
/// does. `{:error, :closed}` after `stdio_close`.
#[rustler::nif]
pub fn stdio_handover<'a>(
    env: Env<'a>,
    stdio_term: Term<'a>,
    port_pid: u32,
    select_ref: Term<'a>,
) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio_term)?;
    let mut state = lock(obj);
    let Some(listener) = state.listener.raw() else {
        return Ok(if state.handed_over {
            rustler::types::atom::ok().encode(env)
        } else {
            closed(env)
        });
    };
    let conn = loop {
        match handover::accept(listener) {
            Ok(None) => {
                select(
                    env,
                    obj,
                    &mut state.listener,
                    ERL_NIF_SELECT_READ,
                    select_ref,
                )?;
                return Ok(atoms::wait().encode(env));
            }
            Ok(Some(conn)) if handover::peer_pid(&conn).ok() == Some(port_pid) => break conn,
            // Someone else found the name: not ours to serve.
            Ok(Some(_stranger)) => continue,
            Err(e) => return error(env, &e),
        }
    };
    let roles: Vec<u8> = state.pending.iter().map(|(role, _)| *role).collect();
    let fds: Vec<RawFd> = state.pending.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    let sent = if fds.is_empty() {
        Ok(())
    } else {
        handover::send_fds(&conn, &roles, &fds)
    };
    // The port has its own copies now (or is gone): ours must close for
    // EOF (and EPIPE on stdin) to come once the command's tree is gone.
    state.pending.clear();
    state.handed_over = true;
    release(env.as_c_arg(), obj, &mut state.listener);
    match sent {
        Ok(()) => Ok(rustler::types::atom::ok().encode(env)),
        Err(e) => error(env, &e),
    }
}

/// `stdio_read(stdio, stream, max, ref) :: binary | :eof | :wait | {:error, posix}`:
/// up to `max` bytes of `stream` (`:output` or `:stderr`). `:wait` means
/// the pipe is empty and `{:select, stdio, ref, :ready_input}` will come
/// when it is not.
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
    let want = pipe::read_size(fd, max);
    let mut bin = OwnedBinary::new(want).ok_or(Error::RaiseAtom("enomem"))?;
    match pipe::read(fd, bin.as_mut_slice()) {
        Ok(0) => Ok(atoms::eof().encode(env)),
        Ok(n) => {
            if n < want && !bin.realloc(n) {
                return Err(Error::RaiseAtom("enomem"));
            }
            Ok(bin.release(env).encode(env))
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
