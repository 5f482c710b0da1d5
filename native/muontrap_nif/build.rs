//! A cross build for a Nerves board links the NIF against the system's
//! sysroot (`NERVES_SDK_SYSROOT`), as its `LDFLAGS` say; the port binary's
//! build.rs does the same. The compiler's version goes into the names of
//! the resource types (src/object.rs): Rust's layouts are its own.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NERVES_SDK_SYSROOT");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("`{rustc} -V` printed no version"));
    println!("cargo:rustc-env=MUONTRAP_RUSTC_VERSION={version}");
    // `cfg(linux_native)`: Linux's own facilities (pidfd, signalfd, the
    // subreaper, the parent-death signal, clone, close_range, cgroups,
    // sd_notify, the abstract namespace). Off on other systems, and on
    // Linux with the `portable` feature, which builds the code macOS and
    // FreeBSD run (docs/portability.md).
    println!("cargo:rustc-check-cfg=cfg(linux_native)");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var_os("CARGO_FEATURE_PORTABLE").is_none()
    {
        println!("cargo:rustc-cfg=linux_native");
    }
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
