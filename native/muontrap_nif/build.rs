//! A cross build for a Nerves board links the NIF against the system's
//! sysroot (`NERVES_SDK_SYSROOT`), as its `LDFLAGS` say; the port binary's
//! build.rs does the same.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NERVES_SDK_SYSROOT");
    if env::var("TARGET").ok() == env::var("HOST").ok() {
        return;
    }
    if let Some(sysroot) = env::var("NERVES_SDK_SYSROOT")
        .ok()
        .filter(|s| !s.is_empty())
    {
        println!("cargo:rustc-link-arg-cdylib=--sysroot={sysroot}");
    }
}
