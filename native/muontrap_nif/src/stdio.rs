//! A command's stdio as the BEAM owns it: the pipe its output goes into,
//! and the listening socket through which the port binary receives the
//! pipe's write end (`handover`). Used by `MuonTrap.cmd/3` and
//! `MuonTrap.Daemon` alike.
//!
//! The command writes into the pipe directly and the owner pulls with
//! `stdio_read`, so no process relays the bytes and the pipe's capacity,
//! plus the one chunk the owner holds, is the flow-control window.
//!
//! Waiting (for the port to connect, for output) is `enif_select`: the
//! owner gets `{:select, stdio, ref, :ready_input}` and calls again. A
//! selected fd may only be closed from the resource type's `stop`
//! callback, which rustler's resource registration does not offer, so this
//! resource type is registered by hand in `load`. Its `down` callback
//! closes everything when the owner dies, at whatever moment.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use rustler::sys::{
    enif_alloc_resource, enif_get_resource, enif_make_resource, enif_monitor_process,
    enif_open_resource_type_x, enif_release_resource, enif_select, ErlNifEnv, ErlNifEvent,
    ErlNifMonitor, ErlNifPid, ErlNifResourceDown, ErlNifResourceDtor, ErlNifResourceFlags,
    ErlNifResourceStop, ErlNifResourceType, ErlNifResourceTypeInit, ERL_NIF_SELECT_READ,
    ERL_NIF_SELECT_STOP,
};
use rustler::types::binary::OwnedBinary;
use rustler::{Encoder, Env, Error, NifResult, Term};

use crate::{errno, handover, pipe};

mod atoms {
    rustler::atoms! { eof, wait, undefined, closed }
}

/// Role byte of the captured output's write end (docs/protocol.md).
const ROLE_OUTPUT: u8 = 1;

/// A descriptor that may be registered with `enif_select`.
#[derive(Default)]
struct Selectable {
    fd: Option<OwnedFd>,
    /// Once selected, the fd is closed only by the `stop` callback.
    selected: bool,
}

struct State {
    /// Where the port binary connects; closed once it has its descriptors.
    listener: Selectable,
    /// The read end of the command's output.
    output: Selectable,
    /// Descriptors for the port binary, with their roles, until handed over.
    pending: Vec<(u8, OwnedFd)>,
}

struct Stdio {
    state: Mutex<State>,
}

static STDIO_TYPE: AtomicPtr<ErlNifResourceType> = AtomicPtr::new(ptr::null_mut());

/// Registers the resource type; called from the NIF library's `load`.
pub fn register(env: Env) -> bool {
    let init = ErlNifResourceTypeInit {
        dtor: stdio_dtor as *const ErlNifResourceDtor,
        stop: stdio_stop as *const ErlNifResourceStop,
        down: stdio_down as *const ErlNifResourceDown,
    };
    let mut tried = ErlNifResourceFlags::ERL_NIF_RT_CREATE;
    // SAFETY: env is the load env, the name is NUL-terminated and static,
    // and init lives across the call (the BEAM copies it).
    let rt = unsafe {
        enif_open_resource_type_x(
            env.as_c_arg(),
            c"MuonTrap.Stdio".as_ptr(),
            &init,
            ErlNifResourceFlags::ERL_NIF_RT_CREATE,
            &mut tried,
        )
    };
    STDIO_TYPE.store(rt.cast_mut(), Ordering::Release);
    !rt.is_null()
}

/// The state inside a resource object made by `stdio_open`.
fn stdio<'a>(obj: *mut c_void) -> &'a Stdio {
    // SAFETY: the BEAM hands our callbacks, and enif_get_resource hands us,
    // only objects of STDIO_TYPE, each initialised by `stdio_open` and
    // valid until `stdio_dtor`.
    unsafe { &*obj.cast::<Stdio>() }
}

fn lock(s: &Stdio) -> std::sync::MutexGuard<'_, State> {
    s.state.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe extern "C" fn stdio_dtor(_env: *mut ErlNifEnv, obj: *mut c_void) {
    // SAFETY: called once, when the last reference is gone: drop the state
    // in place (fds still held here were never selected).
    unsafe { ptr::drop_in_place(obj.cast::<Stdio>()) };
}

unsafe extern "C" fn stdio_stop(
    _env: *mut ErlNifEnv,
    _obj: *mut c_void,
    event: ErlNifEvent,
    _is_direct_call: i32,
) {
    // SAFETY: `release` gave up ownership of this fd to the STOP request;
    // the BEAM no longer polls it.
    drop(unsafe { OwnedFd::from_raw_fd(event) });
}

unsafe extern "C" fn stdio_down(
    env: *mut ErlNifEnv,
    obj: *mut c_void,
    _pid: *const ErlNifPid,
    _mon: *const ErlNifMonitor,
) {
    close_all(env, obj);
}

/// Closes `s`'s fd: a selected one through ERL_NIF_SELECT_STOP, else now.
fn release(env: *mut ErlNifEnv, obj: *mut c_void, s: &mut Selectable) {
    let Some(fd) = s.fd.take() else { return };
    if s.selected {
        let raw: RawFd = fd.into_raw_fd();
        // SAFETY: obj is a live STDIO_TYPE object and raw was selected
        // with it; stdio_stop closes raw once the BEAM is done with it.
        unsafe {
            enif_select(
                env,
                raw,
                ERL_NIF_SELECT_STOP,
                obj,
                ptr::null(),
                atoms::undefined().as_c_arg(),
            )
        };
    }
}

fn close_all(env: *mut ErlNifEnv, obj: *mut c_void) {
    let mut state = lock(stdio(obj));
    state.pending.clear();
    release(env, obj, &mut state.listener);
    release(env, obj, &mut state.output);
}

/// Asks for `{:select, obj, ref, :ready_input}` when `s` is readable.
fn select_read(env: Env, obj: *mut c_void, s: &mut Selectable, select_ref: Term) -> NifResult<()> {
    let Some(fd) = s.fd.as_ref() else {
        return Err(Error::BadArg);
    };
    // SAFETY: obj is live and of our type (which has a stop callback); fd
    // is open and owned by it; the notification goes to the caller.
    let r = unsafe {
        enif_select(
            env.as_c_arg(),
            fd.as_raw_fd(),
            ERL_NIF_SELECT_READ,
            obj,
            ptr::null(),
            select_ref.as_c_arg(),
        )
    };
    if r < 0 {
        return Err(Error::RaiseAtom("select_failed"));
    }
    s.selected = true;
    Ok(())
}

fn error<'a>(env: Env<'a>, err: &std::io::Error) -> NifResult<Term<'a>> {
    let reason = rustler::Atom::from_str(env, errno::atom_name(err))?;
    Ok((rustler::types::atom::error(), reason).encode(env))
}

fn get(term: Term) -> NifResult<*mut c_void> {
    let rt = STDIO_TYPE.load(Ordering::Acquire);
    if rt.is_null() {
        return Err(Error::BadArg);
    }
    let mut obj: *const c_void = ptr::null();
    // SAFETY: a type check; on success obj points at a live object of rt.
    let ok = unsafe { enif_get_resource(term.get_env().as_c_arg(), term.as_c_arg(), rt, &mut obj) };
    if ok == 0 {
        return Err(Error::BadArg);
    }
    Ok(obj.cast_mut())
}

/// A new resource owned (monitored) by the calling process.
fn new_resource<'a>(env: Env<'a>, state: State) -> NifResult<Term<'a>> {
    let rt = STDIO_TYPE.load(Ordering::Acquire);
    if rt.is_null() {
        return Err(Error::RaiseAtom("stdio_unavailable"));
    }
    // SAFETY: rt is our registered type; the object is uninitialised
    // memory of the right size until the write below.
    let obj = unsafe { enif_alloc_resource(rt, std::mem::size_of::<Stdio>()) };
    // SAFETY: obj is fresh, suitably aligned (the BEAM aligns resource
    // data for any type) and sized for a Stdio.
    unsafe {
        ptr::write(
            obj.cast::<Stdio>(),
            Stdio {
                state: Mutex::new(state),
            },
        )
    };
    // SAFETY: the monitor struct is plain data that the call fills in.
    let mut mon: ErlNifMonitor = unsafe { std::mem::zeroed() };
    // SAFETY: obj is a live object of a type with a `down` callback; the
    // pid is the calling, hence live, process.
    unsafe { enif_monitor_process(env.as_c_arg(), obj, env.pid().as_c_arg(), &mut mon) };
    // SAFETY: obj is live; the term takes its own reference, and ours is
    // released so the term alone keeps it alive.
    Ok(unsafe {
        let t = enif_make_resource(env.as_c_arg(), obj);
        enif_release_resource(obj);
        Term::new(env, t)
    })
}

/// `stdio_open(window, output?) :: {stdio, socket_name} | {:error, posix}`:
/// a listener for the port binary and, with `output?`, a pipe of about
/// `window` bytes for the command's output; closed if the caller dies.
#[rustler::nif]
pub fn stdio_open(env: Env, window: usize, output: bool) -> NifResult<Term> {
    let (listener, name) = match handover::listen() {
        Ok(l) => l,
        Err(e) => return error(env, &e),
    };
    let mut state = State {
        listener: Selectable {
            fd: Some(listener),
            selected: false,
        },
        output: Selectable::default(),
        pending: Vec::new(),
    };
    if output {
        let (read, write) = match pipe::make(window) {
            Ok(fds) => fds,
            Err(e) => return error(env, &e),
        };
        state.output.fd = Some(read);
        state.pending.push((ROLE_OUTPUT, write));
    }
    Ok((new_resource(env, state)?, name).encode(env))
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
    let obj = get(stdio_term)?;
    let mut state = lock(stdio(obj));
    let Some(listener) = state.listener.fd.as_ref().map(AsRawFd::as_raw_fd) else {
        let done = state.output.fd.is_some() && state.pending.is_empty();
        return Ok(if done {
            rustler::types::atom::ok().encode(env)
        } else {
            (rustler::types::atom::error(), atoms::closed()).encode(env)
        });
    };
    let conn = loop {
        match handover::accept(listener) {
            Ok(None) => {
                select_read(env, obj, &mut state.listener, select_ref)?;
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
    // EOF to come once the command's tree is gone.
    state.pending.clear();
    release(env.as_c_arg(), obj, &mut state.listener);
    match sent {
        Ok(()) => Ok(rustler::types::atom::ok().encode(env)),
        Err(e) => error(env, &e),
    }
}

/// `stdio_read(stdio, max, ref) :: binary | :eof | :wait | {:error, posix}`:
/// up to `max` bytes of output. `:wait` means the pipe is empty and
/// `{:select, stdio, ref, :ready_input}` will come when it is not.
#[rustler::nif]
pub fn stdio_read<'a>(
    env: Env<'a>,
    stdio_term: Term<'a>,
    max: usize,
    select_ref: Term<'a>,
) -> NifResult<Term<'a>> {
    let obj = get(stdio_term)?;
    let mut state = lock(stdio(obj));
    let Some(fd) = state.output.fd.as_ref().map(AsRawFd::as_raw_fd) else {
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
            select_read(env, obj, &mut state.output, select_ref)?;
            Ok(atoms::wait().encode(env))
        }
        Err(e) => error(env, &e),
    }
}

/// `stdio_close(stdio) :: :ok`: closes every descriptor (idempotent).
#[rustler::nif]
pub fn stdio_close(env: Env, stdio_term: Term) -> NifResult<rustler::Atom> {
    let obj = get(stdio_term)?;
    close_all(env.as_c_arg(), obj);
    Ok(rustler::types::atom::ok())
}
