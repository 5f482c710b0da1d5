//! Stand-ins for the libgcc_s unwinder, so the binary does not load
//! `libgcc_s.so.1` (resident memory, and one more library for the dynamic
//! loader to map on every start; figures in docs/performance.md).
//!
//! The port is built with `panic = "abort"`: it never unwinds. std still
//! references these symbols from its (unused) personality routine and from
//! backtrace printing. With these definitions the linker resolves them here
//! and `--as-needed` drops libgcc_s. A panic still prints its message and
//! aborts; `RUST_BACKTRACE` then prints an empty backtrace.
//!
//! Only where the binary is built with `panic = "abort"` (release) for
//! Linux with glibc on x86_64, aarch64 and 32-bit ARM, where this was
//! measured (ARM's EHABI unwinder has an interface of its own, below);
//! debug and test builds unwind and keep the real unwinder, other targets
//! keep libgcc_s.
#![allow(non_snake_case)]

use libc::{c_int, c_void, uintptr_t};

/// `_URC_END_OF_STACK`: a backtrace walk stops at once.
const END_OF_STACK: c_int = 5;
/// `_URC_FATAL_PHASE1_ERROR`: "cannot unwind", should anything try.
const FATAL: c_int = 3;

#[no_mangle]
pub extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> c_int {
    END_OF_STACK
}

#[cfg(not(target_arch = "arm"))]
#[no_mangle]
pub extern "C" fn _Unwind_GetIP(_ctx: *mut c_void) -> uintptr_t {
    0
}

#[cfg(not(target_arch = "arm"))]
#[no_mangle]
pub extern "C" fn _Unwind_GetIPInfo(_ctx: *mut c_void, ip_before_insn: *mut c_int) -> uintptr_t {
    if !ip_before_insn.is_null() {
        // SAFETY: the caller passes a valid out-pointer (unwinder ABI).
        unsafe { *ip_before_insn = 0 };
    }
    0
}

#[no_mangle]
pub extern "C" fn _Unwind_GetDataRelBase(_ctx: *mut c_void) -> uintptr_t {
    0
}

#[no_mangle]
pub extern "C" fn _Unwind_GetTextRelBase(_ctx: *mut c_void) -> uintptr_t {
    0
}

#[no_mangle]
pub extern "C" fn _Unwind_GetLanguageSpecificData(_ctx: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}

#[no_mangle]
pub extern "C" fn _Unwind_GetRegionStart(_ctx: *mut c_void) -> uintptr_t {
    0
}

#[cfg(not(target_arch = "arm"))]
#[no_mangle]
pub extern "C" fn _Unwind_SetGR(_ctx: *mut c_void, _index: c_int, _value: uintptr_t) {}

#[cfg(not(target_arch = "arm"))]
#[no_mangle]
pub extern "C" fn _Unwind_SetIP(_ctx: *mut c_void, _value: uintptr_t) {}

/// Resuming an unwind cannot happen with `panic = "abort"`; if it ever
/// did, stopping is the only safe answer.
#[no_mangle]
pub extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
    std::process::abort()
}

/// Never called with `panic = "abort"`; present for completeness.
#[no_mangle]
pub extern "C" fn _Unwind_RaiseException(_exception: *mut c_void) -> c_int {
    FATAL
}

/// ARM EHABI: `_UVRSR_FAILED`, the virtual register set cannot be read.
#[cfg(target_arch = "arm")]
const VRS_FAILED: c_int = 2;
/// ARM EHABI: `_URC_FAILURE`.
#[cfg(target_arch = "arm")]
const URC_FAILURE: c_int = 9;

/// EHABI reads registers through this instead of `_Unwind_GetIP` and
/// friends; with no frame to read, every read fails.
#[cfg(target_arch = "arm")]
#[no_mangle]
pub extern "C" fn _Unwind_VRS_Get(
    _ctx: *mut c_void,
    _class: c_int,
    _regno: u32,
    _repr: c_int,
    _value: *mut c_void,
) -> c_int {
    VRS_FAILED
}

#[cfg(target_arch = "arm")]
#[no_mangle]
pub extern "C" fn _Unwind_VRS_Set(
    _ctx: *mut c_void,
    _class: c_int,
    _regno: u32,
    _repr: c_int,
    _value: *mut c_void,
) -> c_int {
    VRS_FAILED
}

#[cfg(target_arch = "arm")]
#[no_mangle]
pub extern "C" fn __gnu_unwind_frame(_exception: *mut c_void, _ctx: *mut c_void) -> c_int {
    URC_FAILURE
}

/// The personality routines that the `.ARM.exidx` entries of precompiled
/// objects name; they run only while unwinding, which never happens.
#[cfg(target_arch = "arm")]
#[no_mangle]
pub extern "C" fn __aeabi_unwind_cpp_pr0(
    _state: c_int,
    _exception: *mut c_void,
    _ctx: *mut c_void,
) -> c_int {
    URC_FAILURE
}

#[cfg(target_arch = "arm")]
#[no_mangle]
pub extern "C" fn __aeabi_unwind_cpp_pr1(
    _state: c_int,
    _exception: *mut c_void,
    _ctx: *mut c_void,
) -> c_int {
    URC_FAILURE
}
