//! A command's channel to its supervisor (docs/protocol.md, "Transport"):
//! a `SOCK_STREAM` socket pair whose other end the spawner's fork owns.
//! The first frame each way carries the version: the supervisor's HELLO
//! (its pid), ours the HANDOVER with the descriptors. Then the frames of
//! the port protocol (`muontrap_wire::frame`), decoded here into terms.
//!
//! The channel lives in the stdio resource, so it shares its owner
//! monitor: when the owner dies the channel is shut down (the supervisor
//! reads EOF and stops the command) or, with an heir, handed to it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use muontrap_wire::channel::{self, HEADER, TAG_HELLO};
use muontrap_wire::frame::{TAG_EXIT, TAG_STARTED};
use rustler::sys::ERL_NIF_SELECT_READ;
use rustler::types::binary::OwnedBinary;
use rustler::{Atom, Binary, Encoder, Env, Error, LocalPid, NifResult, Term};

use muontrap_wire::handover::ROLE_COMMAND;

use super::resource::{self, lock, select, Selectable};
use super::{closed, error, State};
use crate::object::Object;
use crate::spawner::{self, SpawnError};
use crate::{fdpass, wire};

mod atoms {
    rustler::atoms! { ok, wait, eof, exited, busy, gone, no_spawner, supervisor, error }
}

/// Largest frame accepted from a supervisor (NOTIFY bodies are the
/// biggest, a few KB); more is a protocol error.
const MAX_FRAME: usize = 1 << 20;
/// One read's buffer.
const READ_CHUNK: usize = 16 * 1024;

/// What the channel said so far.
#[derive(Default)]
pub struct Progress {
    /// Bytes of a frame not complete yet.
    inbox: Vec<u8>,
    /// The supervisor's pid (its HELLO).
    pub supervisor: Option<u32>,
    /// The program's pid (STARTED): its process group.
    pub program: Option<u32>,
    /// EXIT came: the supervisor finished its job.
    pub exited: bool,
    /// The channel read EOF.
    pub eof: bool,
}

/// `stdio_spawn(stdio) :: :ok | {:error, :busy | :no_spawner | :closed | posix}`:
/// the command's channel and its SPAWN request to the spawner, made
/// before the command is (`stdio_command`, `stdio_hand_over`): the
/// spawner's fork and the supervisor's HELLO then overlap with the work
/// the BEAM does for the command. `:busy`: too many descriptors in
/// flight, try again shortly; `:no_spawner`: start one (`spawner_start/1`)
/// and try again. Nothing here waits.
#[rustler::nif]
pub fn stdio_spawn<'a>(env: Env<'a>, stdio: Term<'a>) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio)?;
    let mut state = lock(obj);
    if state.handed_over || state.channel.raw().is_some() {
        return Ok(closed(env));
    }
    if !spawner::running() {
        return Ok((atoms::error(), atoms::no_spawner()).encode(env));
    }
    let (ours, theirs) = match fdpass::stream_pair() {
        Ok(pair) => pair,
        Err(e) => return error(env, &e),
    };
    match spawner::request(&theirs) {
        Ok(()) => {}
        Err(SpawnError::Busy) => return Ok((atoms::error(), atoms::busy()).encode(env)),
        Err(SpawnError::NoSpawner) => return Ok((atoms::error(), atoms::no_spawner()).encode(env)),
        Err(SpawnError::Os(e)) => return error(env, &e),
        Err(SpawnError::Start(why)) => {
            return Ok((atoms::error(), format!("muontrap: {why}")).encode(env))
        }
    }
    if let Err(e) = fdpass::set_nonblocking(&ours) {
        return error(env, &e);
    }
    state.channel = Selectable::new(ours);
    Ok(atoms::ok().encode(env))
}

/// `stdio_hand_over(stdio, arm, notice) :: :ok | {:ok, id} | {:error, :busy | :gone | :closed | posix}`:
/// the HANDOVER on the channel `stdio_spawn` made: the pipes' other ends,
/// the listeners and the command (`stdio_command`). Then each
/// `{stream, ref}` of `arm` is selected for reading, as a read would be
/// that found the pipe empty: right after the HANDOVER it always is, so
/// that read and its `FIONREAD` are saved. With `notice` true, the
/// command's end is announced as `{:muontrap_ended, id}` when an end
/// notice can be arranged (`crate::notices`): `{:ok, id}`. `:busy`: too
/// many descriptors in flight, try again shortly. `:gone`: the channel's
/// other end closed before the HANDOVER reached it (the request died in a
/// SIGKILLed spawner's socket, or its supervisor was killed), so nothing
/// of the command ran: the channel is closed and the descriptors kept, for
/// `stdio_spawn` and `stdio_hand_over` to start over. Nothing here waits.
#[rustler::nif]
pub fn stdio_hand_over<'a>(
    env: Env<'a>,
    stdio: Term<'a>,
    arm: Vec<(Atom, Term<'a>)>,
    notice: bool,
) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio)?;
    let mut state = lock(obj);
    if state.handed_over {
        return Ok(closed(env));
    }
    if state.channel.fd.is_none() {
        return Err(Error::BadArg);
    }
    // Checked before the send: after it, a bad stream could not undo it.
    for (stream, _) in &arm {
        state.reader(*stream)?;
    }
    if notice && state.notice == 0 {
        state.notice = crate::notices::arm(env, env.pid());
    }
    let frame = match handover_frame(&mut state) {
        Ok(Some(frame)) => frame,
        Ok(None) => return Err(Error::BadArg),
        Err(e) => return error(env, &e),
    };
    let Some(fd) = state.channel.fd.as_ref() else {
        return Err(Error::BadArg);
    };
    let fds: Vec<RawFd> = state.pending.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    if let Err(e) = fdpass::send(fd, &frame, &fds) {
        if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) {
            resource::release(env.as_c_arg(), obj, &mut state.channel);
            state.progress = Progress::default();
            return Ok((atoms::error(), atoms::gone()).encode(env));
        }
        return busy_or_error(env, &e);
    }
    // The supervisor has its own copies now: ours must close for EOF (and
    // EPIPE on stdin) to come once the command's tree is gone.
    state.pending.clear();
    state.command = None;
    state.handed_over = true;
    for (stream, select_ref) in arm {
        select(
            env,
            obj,
            state.reader(stream)?,
            ERL_NIF_SELECT_READ,
            select_ref,
        )?;
    }
    match state.notice {
        0 => Ok(atoms::ok().encode(env)),
        id => Ok((atoms::ok(), id).encode(env)),
    }
}

/// The HANDOVER frame for what is pending, `None` without a command. A
/// frame that could leave this channel in two pieces (a small send
/// buffer) gets its command moved into a COMMAND memfd.
fn handover_frame(state: &mut State) -> std::io::Result<Option<Vec<u8>>> {
    let Some(command) = &state.command else {
        let has = state.pending.iter().any(|(role, _)| *role == ROLE_COMMAND);
        return Ok(has.then(|| channel::handover_noticed(state.notice, &roles(state), &[])));
    };
    let frame = channel::handover_noticed(state.notice, &roles(state), command);
    let sndbuf = match &state.channel.fd {
        Some(fd) => fdpass::send_buffer(fd)?,
        None => 0,
    };
    if channel::fits_in_one_send(frame.len(), sndbuf) {
        return Ok(Some(frame));
    }
    if let Some(command) = state.command.take() {
        if let Err(e) = state.command_in_memfd(&command) {
            state.command = Some(command);
            return Err(e);
        }
    }
    Ok(Some(channel::handover_noticed(
        state.notice,
        &roles(state),
        &[],
    )))
}

fn roles(state: &State) -> Vec<u8> {
    state.pending.iter().map(|(role, _)| *role).collect()
}

fn busy_or_error<'a>(env: Env<'a>, e: &std::io::Error) -> NifResult<Term<'a>> {
    match e.raw_os_error() {
        Some(libc::ETOOMANYREFS | libc::EAGAIN) => Ok((atoms::error(), atoms::busy()).encode(env)),
        _ => error(env, e),
    }
}

/// `stdio_recv(stdio, ref) :: {[event], :wait | :eof | :exited}`: every
/// frame the channel holds, decoded (`MuonTrap.Protocol.message()`, and
/// `{:supervisor, os_pid}` for the HELLO); `:wait`: more will be
/// announced by `{:select, stdio, ref, :ready_input}`; `:eof`: the
/// supervisor is gone (closed its end, or the channel was closed here);
/// `:exited`: EXIT came, after which the supervisor sends nothing (it
/// waits for the channel's close), so the channel is neither read again
/// nor selected: a read and two `epoll_ctl`s less per command.
#[rustler::nif]
pub fn stdio_recv<'a>(env: Env<'a>, stdio: Term<'a>, select_ref: Term<'a>) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio)?;
    let mut state = lock(obj);
    let mut events = Vec::new();
    let end = loop {
        if state.progress.exited {
            break atoms::exited();
        }
        let Some(fd) = state.channel.raw() else {
            state.progress.eof = true;
            break atoms::eof();
        };
        let mut buf = [0u8; READ_CHUNK];
        // SAFETY: reads into our stack buffer from an fd the resource owns.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => {
                state.progress.eof = true;
                break atoms::eof();
            }
            n if n > 0 => {
                state.progress.inbox.extend_from_slice(&buf[..n as usize]);
                if !frames(env, &mut state.progress, &mut events)? {
                    state.progress.eof = true;
                    break atoms::eof();
                }
            }
            _ => match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    select(
                        env,
                        obj,
                        &mut state.channel,
                        ERL_NIF_SELECT_READ,
                        select_ref,
                    )?;
                    break atoms::wait();
                }
                // ECONNRESET and the like: the supervisor is gone.
                _ => {
                    state.progress.eof = true;
                    break atoms::eof();
                }
            },
        }
    };
    Ok((events, end).encode(env))
}

/// Moves the complete frames of the inbox into `events`; false on a
/// protocol error (an error event is added).
fn frames<'a>(env: Env<'a>, p: &mut Progress, events: &mut Vec<Term<'a>>) -> NifResult<bool> {
    let inbox = std::mem::take(&mut p.inbox);
    let mut at = 0;
    let ok = loop {
        let rest = &inbox[at..];
        if rest.len() < HEADER {
            break true;
        }
        let len = channel::frame_len([rest[0], rest[1], rest[2], rest[3]]);
        if len == 0 || len > MAX_FRAME {
            let msg = format!("muontrap: bad frame from the supervisor (length {len})");
            events.push((atoms::error(), msg).encode(env));
            break false;
        }
        if rest.len() < HEADER + len {
            break true;
        }
        events.push(event(env, &rest[HEADER..HEADER + len], p)?);
        at += HEADER + len;
    };
    p.inbox = inbox;
    p.inbox.drain(..at);
    Ok(ok)
}

/// One frame's event; a HELLO, STARTED or EXIT is noted in `p` too.
fn event<'a>(env: Env<'a>, payload: &[u8], p: &mut Progress) -> NifResult<Term<'a>> {
    match payload.first().copied() {
        Some(TAG_HELLO) => return Ok(hello(env, payload, p)),
        Some(TAG_STARTED) if payload.len() == 5 => {
            p.program = Some(u32::from_be_bytes([
                payload[1], payload[2], payload[3], payload[4],
            ]))
        }
        Some(TAG_EXIT) => p.exited = true,
        _ => {}
    }
    let mut bin = OwnedBinary::new(payload.len()).ok_or(Error::RaiseAtom("enomem"))?;
    bin.as_mut_slice().copy_from_slice(payload);
    wire::decode(env, Binary::from_owned(bin, env))
}

fn hello<'a>(env: Env<'a>, payload: &[u8], p: &mut Progress) -> Term<'a> {
    match channel::parse_hello(TAG_HELLO, payload) {
        Some((channel::VERSION, pid)) => {
            p.supervisor = Some(pid);
            (atoms::supervisor(), pid).encode(env)
        }
        Some((v, _)) => {
            let msg = format!(
                "muontrap: the supervisor speaks transport version {v}, this library {}",
                channel::VERSION
            );
            (atoms::error(), msg).encode(env)
        }
        None => (atoms::error(), "muontrap: malformed HELLO").encode(env),
    }
}

/// `stdio_send(stdio, frame) :: :ok | {:error, :closed | posix}`: one
/// request (`MuonTrap.Protocol`) to the supervisor, never waiting.
#[rustler::nif]
pub fn stdio_send<'a>(env: Env<'a>, stdio: Term<'a>, payload: Binary<'a>) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio)?;
    let state = lock(obj);
    let Some(fd) = state.channel.fd.as_ref() else {
        return Ok(closed(env));
    };
    // Before the HANDOVER, a frame would be read as one.
    if !state.handed_over {
        return Err(Error::BadArg);
    }
    let len = u32::try_from(payload.len()).map_err(|_| Error::BadArg)?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(payload.as_slice());
    match fdpass::send(fd, &frame, &[]) {
        Ok(()) => Ok(atoms::ok().encode(env)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {
            Ok(closed(env))
        }
        Err(e) => error(env, &e),
    }
}

/// `stdio_close_channel(stdio) :: :ok`: closes the channel (after EXIT:
/// the supervisor, waiting for that, exits), keeping the pipes.
#[rustler::nif]
pub fn stdio_close_channel<'a>(env: Env<'a>, stdio: Term<'a>) -> NifResult<Atom> {
    let obj = resource::get(stdio)?;
    let mut state = lock(obj);
    resource::release(env.as_c_arg(), obj, &mut state.channel);
    Ok(atoms::ok())
}

/// `stdio_info(stdio) :: %{supervisor: pid | nil, program: pid | nil, exited: bool, eof: bool}`.
#[rustler::nif]
pub fn stdio_info<'a>(env: Env<'a>, stdio: Term<'a>) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio)?;
    let state = lock(obj);
    let p = &state.progress;
    Term::map_new(env)
        .map_put(atoms::supervisor(), p.supervisor)?
        .map_put(Atom::from_str(env, "program")?, p.program)?
        .map_put(Atom::from_str(env, "exited")?, p.exited)?
        .map_put(atoms::eof(), p.eof)
}

/// `stdio_heir(stdio, pid) :: :ok`: when the owner dies, `pid` gets the
/// command instead of its being closed: the channel is shut down for
/// writing (the supervisor stops the command), the pipes are closed,
/// and `pid` becomes the owner and gets `{:muontrap_heir, stdio}`.
#[rustler::nif]
pub fn stdio_heir<'a>(stdio: Term<'a>, pid: LocalPid) -> NifResult<Atom> {
    let obj = resource::get(stdio)?;
    lock(obj).heir = Some(*pid.as_c_arg());
    Ok(atoms::ok())
}

/// `stdio_give(stdio, pid) :: :ok`: what the owner's death does with an
/// heir, now, to `pid` (a caller that lets go early).
#[rustler::nif]
pub fn stdio_give<'a>(env: Env<'a>, stdio: Term<'a>, pid: LocalPid) -> NifResult<Atom> {
    let obj = resource::get(stdio)?;
    let pid = *pid.as_c_arg();
    resource::give(env.as_c_arg(), obj, &mut lock(obj), pid);
    Ok(atoms::ok())
}

/// `stdio_kill(stdio, what) :: :ok | {:error, :unknown}`: SIGKILL to the
/// supervisor (`:supervisor`, only while its channel is open: its pid is
/// then certainly its own) or to the program's process group
/// (`:group`, what a supervisor killed on the way leaves).
#[rustler::nif]
pub fn stdio_kill<'a>(env: Env<'a>, stdio: Term<'a>, what: Atom) -> NifResult<Term<'a>> {
    let obj = resource::get(stdio)?;
    let state = lock(obj);
    let p = &state.progress;
    let target = if what == atoms::supervisor() {
        p.supervisor.filter(|_| !p.eof).map(|pid| pid as i32)
    } else {
        p.program.map(|pid| -(pid as i32))
    };
    match target {
        Some(t) if t != 0 && t != -1 => {
            // SAFETY: kill(2) takes two integers.
            unsafe { libc::kill(t, libc::SIGKILL) };
            Ok(atoms::ok().encode(env))
        }
        _ => Ok((atoms::error(), Atom::from_str(env, "unknown")?).encode(env)),
    }
}

/// `spawner_instance() :: reference`: this load of the library
/// (`spawner::Instance`), for `MuonTrap.Nif.load/0` to keep.
#[rustler::nif]
pub fn spawner_instance() -> Object<spawner::Instance> {
    Object::new(spawner::Instance::new())
}

/// The spawner's pid (`nil` when none runs): for tests and the doctor.
#[rustler::nif]
pub fn spawner_pid() -> Option<u32> {
    spawner::pid()
}

/// `spawner_start(port_binary_path) :: {:ok, os_pid} | {:error, String.t}`:
/// starts the spawner now if none runs. On a dirty scheduler: it waits
/// for the spawner's start and hello, milliseconds.
#[rustler::nif(schedule = "DirtyIo")]
pub fn spawner_start<'a>(env: Env<'a>, path: Binary<'a>) -> NifResult<Term<'a>> {
    let path = CString::new(path.as_slice()).map_err(|_| Error::BadArg)?;
    Ok(match spawner::ensure(&path) {
        Ok(pid) => (atoms::ok(), pid).encode(env),
        Err(SpawnError::Start(why)) => (atoms::error(), format!("muontrap: {why}")).encode(env),
        Err(e) => (atoms::error(), format!("muontrap: {e:?}")).encode(env),
    })
}

/// `spawner_stop() :: :ok`: lets go of the spawner (it exits once its
/// request socket reads EOF; running commands go on); the next start
/// begins a new one.
#[rustler::nif]
pub fn spawner_stop() -> Atom {
    spawner::stop();
    atoms::ok()
}

/// Shuts `fd` down for writing: the supervisor reads EOF.
pub fn shutdown_write(fd: &OwnedFd) {
    // SAFETY: shutdown(2) on a socket we own.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
}
