//! The pipe `MuonTrap.cmd/3` reads its command's output from.
//!
//! The command writes into it directly (the port binary opens the write end
//! through `/proc/<beam>/fd/<n>`) and the caller pulls with `read`, so no
//! process relays the bytes and the pipe's capacity, plus the one chunk the
//! caller holds, is the flow-control window: a command that outruns its
//! caller blocks in write(2) instead of filling the caller's mailbox.
//!
//! When the pipe is empty, `read` registers it with `enif_select` and the
//! caller gets `{:select, reader, ref, :ready_input}` once there is more.
//! A selected fd may only be closed from the resource type's `stop`
//! callback, which rustler's resource registration does not offer, so this
//! resource type is registered by hand in `load`. Its `down` callback
//! closes the pipe when the caller dies in the middle of a command.

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

use crate::errno;

mod atoms {
    rustler::atoms! { eof, wait, undefined }
}

/// Reads never ask for more than this: one read of a full 1 MiB pipe.
const MAX_READ: usize = 1 << 20;
/// What a read asks for when FIONREAD reports nothing (EOF or EAGAIN next).
const PROBE_READ: usize = 64 * 1024;

struct Reader {
    state: Mutex<State>,
}

struct State {
    /// The read end; taken when the pipe is closed.
    read: Option<OwnedFd>,
    /// The write end, held until the port binary has opened it.
    write: Option<OwnedFd>,
    /// Once registered with `enif_select`, the read end is closed only by
    /// the `stop` callback.
    selected: bool,
}

static READER_TYPE: AtomicPtr<ErlNifResourceType> = AtomicPtr::new(ptr::null_mut());

/// Registers the resource type; called from the NIF library's `load`.
pub fn register(env: Env) -> bool {
    let init = ErlNifResourceTypeInit {
        dtor: reader_dtor as *const ErlNifResourceDtor,
        stop: reader_stop as *const ErlNifResourceStop,
        down: reader_down as *const ErlNifResourceDown,
    };
    let mut tried = ErlNifResourceFlags::ERL_NIF_RT_CREATE;
    // SAFETY: env is the load env, the name is NUL-terminated and static,
    // and init lives across the call (the BEAM copies it).
    let rt = unsafe {
        enif_open_resource_type_x(
            env.as_c_arg(),
            c"MuonTrap.OutputPipe".as_ptr(),
            &init,
            ErlNifResourceFlags::ERL_NIF_RT_CREATE,
            &mut tried,
        )
    };
    READER_TYPE.store(rt.cast_mut(), Ordering::Release);
    !rt.is_null()
}

/// The state inside a resource object made by `new_reader`.
fn reader<'a>(obj: *mut c_void) -> &'a Reader {
    // SAFETY: the BEAM hands our callbacks, and enif_get_resource hands us,
    // only objects of READER_TYPE, each initialised by `new_reader` and
    // valid until `reader_dtor`.
    unsafe { &*obj.cast::<Reader>() }
}

fn lock(r: &Reader) -> std::sync::MutexGuard<'_, State> {
    r.state.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe extern "C" fn reader_dtor(_env: *mut ErlNifEnv, obj: *mut c_void) {
    // SAFETY: called once, when the last reference is gone: drop the state
    // in place (a read end still open was never selected).
    unsafe { ptr::drop_in_place(obj.cast::<Reader>()) };
}

unsafe extern "C" fn reader_stop(
    _env: *mut ErlNifEnv,
    _obj: *mut c_void,
    event: ErlNifEvent,
    _is_direct_call: i32,
) {
    // SAFETY: `close` gave up ownership of this fd to the STOP request;
    // the BEAM no longer polls it.
    drop(unsafe { OwnedFd::from_raw_fd(event) });
}

unsafe extern "C" fn reader_down(
    env: *mut ErlNifEnv,
    obj: *mut c_void,
    _pid: *const ErlNifPid,
    _mon: *const ErlNifMonitor,
) {
    close_raw(env, obj);
}

/// Closes both ends; a selected read end through ERL_NIF_SELECT_STOP.
fn close_raw(env: *mut ErlNifEnv, obj: *mut c_void) {
    let mut state = lock(reader(obj));
    state.write = None;
    let Some(read) = state.read.take() else {
        return;
    };
    // Never selected: `read` is simply dropped (closed) on return.
    if state.selected {
        let fd: RawFd = read.into_raw_fd();
        // SAFETY: obj is a live READER_TYPE object and fd was selected
        // with it; reader_stop closes fd once the BEAM is done with it.
        unsafe {
            enif_select(
                env,
                fd,
                ERL_NIF_SELECT_STOP,
                obj,
                ptr::null(),
                atoms::undefined().as_c_arg(),
            )
        };
    }
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe whose capacity is about `window` bytes (one page at least, the
/// system's pipe-max-size at most): the read end non-blocking, both
/// close-on-exec.
fn make_pipe(window: usize) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are new and ours.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_nonblocking(&read)?;
    let size = libc::c_int::try_from(window.clamp(4096, MAX_READ)).unwrap_or(4096);
    // SAFETY: fcntl with an integer argument. Failure (EPERM above the
    // limit for unprivileged users) leaves the default 64 KiB.
    unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    Ok((read, write))
}

/// `output_pipe(window) :: {reader, writer_path} | {:error, posix}`: a new
/// pipe, its read end owned by the calling process (closed if it dies).
#[rustler::nif]
pub fn output_pipe(env: Env, window: usize) -> NifResult<Term> {
    let (read, write) = match make_pipe(window) {
        Ok(fds) => fds,
        Err(e) => return error(env, &e),
    };
    // SAFETY: getpid cannot fail.
    let path = format!(
        "/proc/{}/fd/{}",
        unsafe { libc::getpid() },
        write.as_raw_fd()
    );
    let rt = READER_TYPE.load(Ordering::Acquire);
    if rt.is_null() {
        return Err(Error::RaiseAtom("output_pipe_unavailable"));
    }
    // SAFETY: rt is our registered type; the object is uninitialised
    // memory of the right size until the write below.
    let obj = unsafe { enif_alloc_resource(rt, std::mem::size_of::<Reader>()) };
    let state = State {
        read: Some(read),
        write: Some(write),
        selected: false,
    };
    // SAFETY: obj is fresh, suitably aligned (the BEAM aligns resource
    // data for any type) and sized for a Reader.
    unsafe {
        ptr::write(
            obj.cast::<Reader>(),
            Reader {
                state: Mutex::new(state),
            },
        )
    };
    let pid = env.pid();
    // SAFETY: the monitor struct is plain data that the call fills in.
    let mut mon: ErlNifMonitor = unsafe { std::mem::zeroed() };
    // SAFETY: obj is a live object of a type with a `down` callback; pid is
    // the calling, hence live, process.
    unsafe { enif_monitor_process(env.as_c_arg(), obj, pid.as_c_arg(), &mut mon) };
    // SAFETY: obj is live; the term takes its own reference, and ours is
    // released so the term alone keeps it alive.
    let term = unsafe {
        let t = enif_make_resource(env.as_c_arg(), obj);
        enif_release_resource(obj);
        Term::new(env, t)
    };
    Ok((term, path).encode(env))
}

fn error<'a>(env: Env<'a>, err: &std::io::Error) -> NifResult<Term<'a>> {
    let reason = rustler::Atom::from_str(env, errno::atom_name(err))?;
    Ok((rustler::types::atom::error(), reason).encode(env))
}

fn get(term: Term) -> NifResult<*mut c_void> {
    let rt = READER_TYPE.load(Ordering::Acquire);
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

/// `output_read(reader, max, ref) :: binary | :eof | :wait | {:error, posix}`:
/// up to `max` bytes of output. `:wait` means the pipe is empty and
/// `{:select, reader, ref, :ready_input}` will come when it is not.
#[rustler::nif]
pub fn output_read<'a>(
    env: Env<'a>,
    reader_term: Term<'a>,
    max: usize,
    select_ref: Term<'a>,
) -> NifResult<Term<'a>> {
    let obj = get(reader_term)?;
    let mut state = lock(reader(obj));
    let Some(fd) = state.read.as_ref().map(AsRawFd::as_raw_fd) else {
        return Ok(atoms::eof().encode(env));
    };
    let max = max.clamp(1, MAX_READ);
    let queued = queued_bytes(fd);
    let want = if queued > 0 {
        queued.min(max)
    } else {
        PROBE_READ.min(max)
    };
    let mut bin = OwnedBinary::new(want).ok_or(Error::RaiseAtom("enomem"))?;
    loop {
        // SAFETY: read into the binary's own buffer of `want` bytes.
        let n = unsafe { libc::read(fd, bin.as_mut_slice().as_mut_ptr().cast(), want) };
        match usize::try_from(n) {
            Ok(0) => return Ok(atoms::eof().encode(env)),
            Ok(n) => {
                if n < want && !bin.realloc(n) {
                    return Err(Error::RaiseAtom("enomem"));
                }
                return Ok(bin.release(env).encode(env));
            }
            Err(_) => {
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => {
                        // SAFETY: obj is live and of our type (which has a
                        // stop callback); fd is its open read end; the
                        // notification goes to the calling process.
                        let r = unsafe {
                            enif_select(
                                env.as_c_arg(),
                                fd,
                                ERL_NIF_SELECT_READ,
                                obj,
                                ptr::null(),
                                select_ref.as_c_arg(),
                            )
                        };
                        if r < 0 {
                            return Err(Error::RaiseAtom("select_failed"));
                        }
                        state.selected = true;
                        return Ok(atoms::wait().encode(env));
                    }
                    _ => return error(env, &err),
                }
            }
        }
    }
}

/// Bytes queued in the pipe (FIONREAD); 0 if unknown.
fn queued_bytes(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores one int through the valid pointer.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        usize::try_from(n).unwrap_or(0)
    }
}

/// `output_close_writer(reader) :: :ok`: drops our write end once the port
/// binary has its own, so EOF comes when the command's side is closed.
#[rustler::nif]
pub fn output_close_writer(reader_term: Term) -> NifResult<rustler::Atom> {
    let obj = get(reader_term)?;
    lock(reader(obj)).write = None;
    Ok(rustler::types::atom::ok())
}

/// `output_close(reader) :: :ok`: closes both ends (idempotent).
#[rustler::nif]
pub fn output_close(env: Env, reader_term: Term) -> NifResult<rustler::Atom> {
    let obj = get(reader_term)?;
    close_raw(env.as_c_arg(), obj);
    Ok(rustler::types::atom::ok())
}
