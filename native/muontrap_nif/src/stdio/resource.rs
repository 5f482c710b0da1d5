//! The `MuonTrap.Stdio` resource type, with callbacks of its own (the
//! others share `object::Object`'s). Why: a descriptor that was passed
//! to `enif_select` may only be closed from the type's `stop` callback,
//! once the BEAM no longer polls it, and `Object`'s types have only a
//! destructor. Everything that touches the raw type, its callbacks and
//! `enif_select` is in this file. The `down` callback closes everything
//! when the owner dies, at whatever moment.

use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustler::sys::{
    enif_alloc_env, enif_alloc_resource, enif_demonitor_process, enif_free_env, enif_get_resource,
    enif_make_atom, enif_make_resource, enif_make_tuple_from_array, enif_monitor_process,
    enif_release_resource, enif_select, enif_send, ErlNifEnv, ErlNifEvent, ErlNifMonitor,
    ErlNifPid, ErlNifResourceDown, ErlNifResourceDtor, ErlNifResourceStop, ErlNifResourceType,
    ErlNifResourceTypeInit, ErlNifSelectFlags, ERL_NIF_SELECT_STOP,
};
use rustler::{Env, Error, NifResult, Term};

use super::State;
use crate::object;

mod atoms {
    rustler::atoms! { undefined }
}

/// A descriptor that may be registered with `enif_select`.
#[derive(Default)]
pub struct Selectable {
    pub fd: Option<OwnedFd>,
    /// Once selected, the fd is closed only by the `stop` callback.
    selected: bool,
}

impl Selectable {
    pub fn new(fd: OwnedFd) -> Selectable {
        Selectable {
            fd: Some(fd),
            selected: false,
        }
    }

    pub fn raw(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

struct Stdio {
    state: Mutex<State>,
}

static STDIO_TYPE: AtomicPtr<ErlNifResourceType> = AtomicPtr::new(ptr::null_mut());

/// Registers the resource type; called from the NIF library's `load` and
/// `upgrade` (an upgrade takes over the old library's commands when the
/// layout allows, see src/object.rs).
pub fn register(env: Env) -> bool {
    let init = ErlNifResourceTypeInit {
        dtor: stdio_dtor as *const ErlNifResourceDtor,
        stop: stdio_stop as *const ErlNifResourceStop,
        down: stdio_down as *const ErlNifResourceDown,
    };
    let (rt, taken_over) = object::open_type(env, &object::type_name("MuonTrap.Stdio"), &init);
    crate::init::stdio_opened(taken_over);
    STDIO_TYPE.store(rt.cast_mut(), Ordering::Release);
    !rt.is_null()
}

/// The state inside a resource object made by `new_resource`.
fn stdio<'a>(obj: *mut c_void) -> &'a Stdio {
    // SAFETY: the BEAM hands our callbacks, and enif_get_resource hands us,
    // only objects of STDIO_TYPE, each initialised by `new_resource` and
    // valid until `stdio_dtor`.
    unsafe { &*obj.cast::<Stdio>() }
}

/// The locked state of a live resource object.
pub fn lock<'a>(obj: *mut c_void) -> MutexGuard<'a, State> {
    stdio(obj).state.lock().unwrap_or_else(|e| e.into_inner())
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

/// The owner died: the command goes to the heir if there is one; else
/// everything closes, the channel shut down first so that a stray
/// reference to the resource (in a crash report, say) cannot keep the
/// supervisor waiting.
unsafe extern "C" fn stdio_down(
    env: *mut ErlNifEnv,
    obj: *mut c_void,
    _pid: *const ErlNifPid,
    _mon: *const ErlNifMonitor,
) {
    let mut state = lock(obj);
    state.monitor = None;
    match state.heir.take() {
        Some(heir) => give(env, obj, &mut state, heir),
        None => close_down(env, obj, &mut state),
    }
}

fn close_down(env: *mut ErlNifEnv, obj: *mut c_void, state: &mut State) {
    if let Some(fd) = state.channel.fd.as_ref() {
        // SAFETY: shutdown(2) on a socket the resource owns.
        unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
    }
    state.close_all(env, obj);
}

/// Makes `pid` the owner: the channel is shut down for writing (the
/// supervisor stops the command and reports how it ended), the pipes
/// close, and `pid` gets `{:muontrap_heir, stdio}` to read the rest. A
/// `pid` that is gone already: everything closes.
pub fn give(env: *mut ErlNifEnv, obj: *mut c_void, state: &mut State, pid: ErlNifPid) {
    // The new owner reads the channel itself; no notice reaches it.
    state.forget_notice();
    if let Some(mon) = state.monitor.take() {
        // SAFETY: obj is live and mon a monitor it holds.
        unsafe { enif_demonitor_process(env, obj, &mon) };
    }
    state.heir = None;
    // SAFETY: the monitor struct is plain data that the call fills in.
    let mut mon: ErlNifMonitor = unsafe { std::mem::zeroed() };
    // SAFETY: obj is a live object of a type with a `down` callback.
    if unsafe { enif_monitor_process(env, obj, &pid, &mut mon) } != 0 {
        return close_down(env, obj, state);
    }
    state.monitor = Some(mon);
    // A read select the old owner armed would still notify it: its
    // notices go to the new owner now (who reads with a ref of its own).
    retarget_read(env, obj, &state.channel, &pid);
    if let Some(fd) = state.channel.fd.as_ref() {
        super::channel::shutdown_write(fd);
    }
    state.close_pipes(env, obj);
    // SAFETY: a fresh message env holds the tuple until enif_send copies
    // it out; enif_make_resource takes its own reference to the live obj.
    unsafe {
        let msg_env = enif_alloc_env();
        let tag = enif_make_atom(msg_env, c"muontrap_heir".as_ptr().cast());
        let items = [tag, enif_make_resource(msg_env, obj)];
        let msg = enif_make_tuple_from_array(msg_env, items.as_ptr(), 2);
        enif_send(env, &pid, msg_env, msg);
        enif_free_env(msg_env);
    }
}

/// `enif_select` return bits (erl_nif.h) that rustler does not name: the
/// stop callback ran during the call, or will run later.
const SELECT_STOP_CALLED: c_int = 1 << 0;
const SELECT_STOP_SCHEDULED: c_int = 1 << 1;

/// Whether `enif_select(STOP)`'s result `r` means a stop callback ran or
/// will run (and so closes the fd). A negative `r` is a failure.
fn stop_callback_follows(r: c_int) -> bool {
    r >= 0 && r & (SELECT_STOP_CALLED | SELECT_STOP_SCHEDULED) != 0
}

/// Closes `s`'s fd: one never selected now; a selected one through
/// ERL_NIF_SELECT_STOP, whose stop callback closes it, unless the BEAM
/// says no callback will come (the call failed, or reported neither
/// STOP_CALLED nor STOP_SCHEDULED): then it is closed here, as the exile
/// NIF does, rather than leaked.
pub fn release(env: *mut ErlNifEnv, obj: *mut c_void, s: &mut Selectable) {
    let Some(fd) = s.fd.take() else { return };
    if !std::mem::take(&mut s.selected) {
        return; // `fd` is dropped, so closed, here.
    }
    let raw: RawFd = fd.into_raw_fd();
    // SAFETY: obj is a live STDIO_TYPE object and raw was selected with
    // it; stdio_stop closes raw once the BEAM is done with it.
    let r = unsafe {
        enif_select(
            env,
            raw,
            ERL_NIF_SELECT_STOP,
            obj,
            ptr::null(),
            atoms::undefined().as_c_arg(),
        )
    };
    if !stop_callback_follows(r) {
        // SAFETY: no stop callback will take raw, so it is still ours
        // alone, open, and closed exactly once, here.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    }
}

/// Points `s`'s pending read select, if it has one, at `pid`: no notice
/// goes to whoever armed it.
fn retarget_read(env: *mut ErlNifEnv, obj: *mut c_void, s: &Selectable, pid: &ErlNifPid) {
    let Some(fd) = s.raw().filter(|_| s.selected) else {
        return;
    };
    // SAFETY: obj is live and of our type; fd is open, owned by it and
    // was selected with it; pid is a valid pid; re-selecting changes only
    // whom the notice goes to.
    unsafe {
        enif_select(
            env,
            fd,
            rustler::sys::ERL_NIF_SELECT_READ,
            obj,
            pid,
            atoms::undefined().as_c_arg(),
        )
    };
}

/// Asks for `{:select, obj, ref, :ready_input | :ready_output}` (per
/// `mode`) when `s` is readable or writable.
pub fn select(
    env: Env,
    obj: *mut c_void,
    s: &mut Selectable,
    mode: ErlNifSelectFlags,
    select_ref: Term,
) -> NifResult<()> {
    let Some(fd) = s.raw() else {
        return Err(Error::BadArg);
    };
    // SAFETY: obj is live and of our type (which has a stop callback); fd
    // is open and owned by it; the notification goes to the caller.
    let r = unsafe {
        enif_select(
            env.as_c_arg(),
            fd,
            mode,
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

/// The object behind a `MuonTrap.Stdio` term.
pub fn get(term: Term) -> NifResult<*mut c_void> {
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
pub fn new_resource<'a>(env: Env<'a>, state: State) -> NifResult<Term<'a>> {
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
    lock(obj).monitor = Some(mon);
    // SAFETY: obj is live; the term takes its own reference, and ours is
    // released so the term alone keeps it alive.
    Ok(unsafe {
        let t = enif_make_resource(env.as_c_arg(), obj);
        enif_release_resource(obj);
        Term::new(env, t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_called_or_scheduled_stop_closes_the_fd() {
        assert!(stop_callback_follows(SELECT_STOP_CALLED));
        assert!(stop_callback_follows(SELECT_STOP_SCHEDULED));
        // STOP also cancels a pending read: ERL_NIF_SELECT_READ_CANCELLED.
        assert!(stop_callback_follows(SELECT_STOP_CALLED | (1 << 4)));
        // Nothing said: no callback comes, the fd is ours to close.
        assert!(!stop_callback_follows(0));
        // Failures are negative (INT_MIN | ERL_NIF_SELECT_INVALID_EVENT, ...),
        // whatever other bits they carry.
        assert!(!stop_callback_follows(c_int::MIN | (1 << 2)));
        assert!(!stop_callback_follows(c_int::MIN | SELECT_STOP_CALLED));
    }
}
