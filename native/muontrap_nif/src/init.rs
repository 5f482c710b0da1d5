//! The library's entry point, in place of `rustler::init!`, which gives
//! no `upgrade` callback: without one the BEAM refuses to load a new
//! version of `MuonTrap.Nif` over the old ("Upgrade not supported by this
//! NIF library"). `upgrade` registers the same types as `load`; objects
//! whose type names match are taken over (src/object.rs).

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

use rustler::codegen_runtime::{
    c_char, c_int, get_nif_resource_type_init_size, handle_nif_init_call, inventory, min_erts,
    DEF_NIF_ENTRY, DEF_NIF_FUNC, NIF_ENV, NIF_MAJOR_VERSION, NIF_MINOR_VERSION, NIF_TERM,
};
use rustler::{Atom, Env, Term};

mod atoms {
    rustler::atoms! { load, takeover, no_takeover }
}

/// How this library was loaded: 0 by `load`, 1 by `upgrade` with running
/// commands taken over, 2 by `upgrade` without.
static LOADED_AS: AtomicU8 = AtomicU8::new(0);
static UPGRADING: AtomicBool = AtomicBool::new(false);

/// Called when the `MuonTrap.Stdio` type opens: whether it took over the
/// old library's commands (in an upgrade).
pub fn stdio_opened(taken_over: bool) {
    if UPGRADING.load(Ordering::Relaxed) {
        LOADED_AS.store(if taken_over { 1 } else { 2 }, Ordering::Relaxed);
    }
}

/// `loaded_as() :: :load | :takeover | :no_takeover`: how this library was
/// loaded. `:no_takeover`: an upgrade whose resource layout differs from
/// the old library's (src/object.rs), so the commands started before it
/// cannot be read here; `MuonTrap.Nif` warns about it.
#[rustler::nif]
fn loaded_as() -> Atom {
    match LOADED_AS.load(Ordering::Relaxed) {
        0 => atoms::load(),
        1 => atoms::takeover(),
        _ => atoms::no_takeover(),
    }
}

/// The entry and the function table it points into, built once.
struct Entry {
    entry: DEF_NIF_ENTRY,
    _funcs: Box<[DEF_NIF_FUNC]>,
}

// SAFETY: written once, then only read by the BEAM; its pointers are to
// static strings and to the boxed table kept beside them.
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

static ENTRY: OnceLock<Entry> = OnceLock::new();

fn register(env: Env, _info: Term) -> bool {
    crate::register_types(env)
}

unsafe extern "C" fn load(env: NIF_ENV, _priv_data: *mut *mut c_void, info: NIF_TERM) -> c_int {
    // SAFETY: the BEAM calls this with its load env and term.
    unsafe {
        let env = Env::new_init_env(&env, env);
        handle_nif_init_call(register, env, Term::new(env, info))
    }
}

unsafe extern "C" fn upgrade(
    env: NIF_ENV,
    priv_data: *mut *mut c_void,
    _old_priv_data: *mut *mut c_void,
    info: NIF_TERM,
) -> c_int {
    UPGRADING.store(true, Ordering::Relaxed);
    // SAFETY: as `load`: an upgrade is a load with old code present.
    let loaded = unsafe { load(env, priv_data, info) };
    UPGRADING.store(false, Ordering::Relaxed);
    loaded
}

fn entry() -> Entry {
    let funcs: Box<[DEF_NIF_FUNC]> = inventory::iter::<rustler::Nif>()
        .map(rustler::Nif::get_def)
        .collect();
    let entry = DEF_NIF_ENTRY {
        major: NIF_MAJOR_VERSION,
        minor: NIF_MINOR_VERSION,
        name: c"Elixir.MuonTrap.Nif".as_ptr(),
        num_of_funcs: funcs.len() as c_int,
        funcs: funcs.as_ptr(),
        load: Some(load),
        reload: None,
        upgrade: Some(upgrade),
        unload: None,
        vm_variant: c"beam.vanilla".as_ptr(),
        options: 0,
        sizeof_ErlNifResourceTypeInit: get_nif_resource_type_init_size(),
        min_erts: min_erts().as_ptr() as *const c_char,
    };
    Entry {
        entry,
        _funcs: funcs,
    }
}

/// What the BEAM looks up in the library.
#[no_mangle]
extern "C" fn nif_init() -> *const DEF_NIF_ENTRY {
    // SAFETY: fills rustler's table of the BEAM's functions, as
    // `rustler::init!` does first.
    unsafe { rustler::codegen_runtime::internal_write_symbols() };
    &ENTRY.get_or_init(entry).entry
}
