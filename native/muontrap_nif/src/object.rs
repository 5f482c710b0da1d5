//! The NIF's resource types, registered by hand so that a code upgrade
//! can take over a running daemon's objects (docs/protocol.md, "Hot code
//! upgrade"). rustler 0.38 registers its `Resource` types with
//! `ERL_NIF_RT_CREATE` only, which fails while the old library's types
//! exist, so none of ours use it.
//!
//! A type's name carries `LAYOUT`, the transport's version and the
//! compiler's: an upgrade takes over the old objects (they keep working,
//! with the new library's code) only when all three match, since the new
//! code reads them in place. Otherwise the old library keeps its objects,
//! and the new one cannot read them (see the docs for what that does).

use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

use rustler::sys::{
    enif_alloc_resource, enif_get_resource, enif_keep_resource, enif_make_resource,
    enif_open_resource_type_x, enif_release_resource, ErlNifEnv, ErlNifResourceDtor,
    ErlNifResourceFlags, ErlNifResourceType, ErlNifResourceTypeInit,
};
use rustler::{Decoder, Encoder, Env, Error, NifResult, Term};

/// The layout of what the resource types hold: `Stdio`'s state, `Listeners`,
/// `OpenFiles`, and everything inside them, behind pointers too. Bump it
/// with any change there: the test `layout_is_pinned` catches a change of
/// size of the outer types, not every change.
pub const LAYOUT: u32 = 3;

/// The name this library gives resource type `stem`: taken over by an
/// upgrade whose library holds the same layout, speaks the same transport
/// and was built by the same compiler.
pub fn type_name(stem: &str) -> CString {
    let name = format!(
        "{stem}/layout {LAYOUT}/wire {}/{}",
        muontrap_wire::channel::VERSION,
        env!("MUONTRAP_RUSTC_VERSION")
    );
    // The parts hold no NUL.
    CString::new(name).unwrap_or_default()
}

/// Opens resource type `name` in the library's `load` or `upgrade`: the
/// old library's type of that name with its objects (then `true`), else a
/// new type. (Two calls: rustler's flags type cannot hold CREATE | TAKEOVER.)
pub fn open_type(
    env: Env,
    name: &CString,
    init: &ErlNifResourceTypeInit,
) -> (*const ErlNifResourceType, bool) {
    let open = |flags| {
        let mut tried = flags;
        // SAFETY: env is the load env, the name is NUL-terminated, and
        // init lives across the call (the BEAM copies it).
        unsafe { enif_open_resource_type_x(env.as_c_arg(), name.as_ptr(), init, flags, &mut tried) }
    };
    let taken = open(ErlNifResourceFlags::ERL_NIF_RT_TAKEOVER);
    if taken.is_null() {
        (open(ErlNifResourceFlags::ERL_NIF_RT_CREATE), false)
    } else {
        (taken, true)
    }
}

/// A Rust value kept in a resource object of its own type.
pub trait Kind: Send + Sync + Sized + 'static {
    /// The type's handle, set by `register`.
    fn slot() -> &'static AtomicPtr<ErlNifResourceType>;
}

/// Makes a type a `Kind`, with a type handle of its own.
macro_rules! kind {
    ($t:ty) => {
        impl $crate::object::Kind for $t {
            fn slot() -> &'static ::std::sync::atomic::AtomicPtr<::rustler::sys::ErlNifResourceType>
            {
                static TYPE: ::std::sync::atomic::AtomicPtr<::rustler::sys::ErlNifResourceType> =
                    ::std::sync::atomic::AtomicPtr::new(::std::ptr::null_mut());
                &TYPE
            }
        }
    };
}
pub(crate) use kind;

/// Registers `T`'s resource type as `name`; called from `load` and `upgrade`.
pub fn register<T: Kind>(env: Env, name: &CString) -> bool {
    const { assert!(align_of::<T>() <= 8, "resource objects are 8-byte aligned") };
    let init = ErlNifResourceTypeInit {
        dtor: dtor::<T> as *const ErlNifResourceDtor,
        stop: ptr::null(),
        down: ptr::null(),
    };
    let (rt, _) = open_type(env, name, &init);
    T::slot().store(rt.cast_mut(), Ordering::Release);
    !rt.is_null()
}

unsafe extern "C" fn dtor<T: Kind>(_env: *mut ErlNifEnv, obj: *mut c_void) {
    // SAFETY: called once, when the last reference is gone, on an object
    // `Object::new` initialised with a T.
    unsafe { ptr::drop_in_place(obj.cast::<T>()) };
}

/// One reference to a resource object holding a `T`, like rustler's
/// `ResourceArc`.
pub struct Object<T: Kind> {
    ptr: NonNull<T>,
    kind: PhantomData<T>,
}

// SAFETY: the object is shared only by reference, and T is Send + Sync.
unsafe impl<T: Kind> Send for Object<T> {}
// SAFETY: as above.
unsafe impl<T: Kind> Sync for Object<T> {}

impl<T: Kind> Object<T> {
    pub fn new(value: T) -> Object<T> {
        let rt = T::slot().load(Ordering::Acquire);
        // SAFETY: the type was registered at load, before any NIF runs;
        // the BEAM aborts rather than return no memory.
        let obj = unsafe { enif_alloc_resource(rt, size_of::<T>()) }.cast::<T>();
        let ptr = NonNull::new(obj).unwrap_or_else(|| std::process::abort());
        // SAFETY: fresh memory of T's size, aligned to 8 (see `register`).
        unsafe { ptr.as_ptr().write(value) };
        Object {
            ptr,
            kind: PhantomData,
        }
    }
}

impl<T: Kind> Deref for Object<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the object lives while this reference does.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Kind> Clone for Object<T> {
    fn clone(&self) -> Self {
        // SAFETY: a live object; the new reference is released on drop.
        unsafe { enif_keep_resource(self.ptr.as_ptr().cast()) };
        Object {
            ptr: self.ptr,
            kind: PhantomData,
        }
    }
}

impl<T: Kind> Drop for Object<T> {
    fn drop(&mut self) {
        // SAFETY: this reference was kept (`new`, `clone`, `decode`).
        unsafe { enif_release_resource(self.ptr.as_ptr().cast()) };
    }
}

impl<T: Kind> Encoder for Object<T> {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        // SAFETY: a live object; the term holds a reference of its own.
        let term = unsafe { enif_make_resource(env.as_c_arg(), self.ptr.as_ptr().cast()) };
        // SAFETY: a term just made in env.
        unsafe { Term::new(env, term) }
    }
}

impl<'a, T: Kind> Decoder<'a> for Object<T> {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let rt = T::slot().load(Ordering::Acquire);
        let mut obj: *const c_void = ptr::null();
        // SAFETY: obj receives a pointer into an object of type rt, valid
        // while the term is; it is kept before the term can go.
        let found =
            unsafe { enif_get_resource(term.get_env().as_c_arg(), term.as_c_arg(), rt, &mut obj) };
        let ptr = NonNull::new(obj.cast_mut().cast::<T>()).filter(|_| found != 0);
        let ptr = ptr.ok_or(Error::BadArg)?;
        // SAFETY: as above.
        unsafe { enif_keep_resource(ptr.as_ptr().cast()) };
        Ok(Object {
            ptr,
            kind: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_layout_transport_and_compiler() {
        let name = type_name("MuonTrap.Stdio").into_string().unwrap();
        assert!(name.starts_with(&format!("MuonTrap.Stdio/layout {LAYOUT}/wire ")));
        assert!(name.contains("rustc "), "{name}");
        // An atom holds at most 255 characters.
        assert!(name.len() < 255, "{name}");
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layout_is_pinned() {
        // An upgrade reads these in place: a change in size is a change of
        // layout. Bump LAYOUT with it, and pin the new figures (other
        // changes of what they hold need a bump too, without a failure here).
        use crate::{cgroup_fs, listeners, open_files, stdio};
        let sizes = [
            size_of::<stdio::State>(),
            size_of::<stdio::Progress>(),
            size_of::<stdio::Selectable>(),
            size_of::<listeners::Listeners>(),
            size_of::<open_files::OpenFiles>(),
            size_of::<cgroup_fs::Resolved>(),
        ];
        assert_eq!((LAYOUT, sizes), (3, [200, 48, 8, 24, 88, 32]));
    }
}
