//! Link options for the port binary that shrink it without giving up PIE
//! (ASLR): measured in README, "Performance". Only for native glibc builds
//! where they are known to work; cross builds (Nerves) link as before.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MUONTRAP_PLAIN_LINK");
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    let native_gnu = target == host && target.ends_with("-linux-gnu");
    if !native_gnu || env::var_os("MUONTRAP_PLAIN_LINK").is_some() {
        return;
    }
    // DT_RELR packs the ~1,000 relative relocations of a PIE (-22 KB, and
    // less work for the dynamic loader). The binary then needs glibc 2.36,
    // which the build host has, as the binary runs where it was built.
    if glibc_at_least(&host_glibc(), (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // Identical code folding (-4 KB); rust-lld, the default linker on this
    // target, supports it. Not when a linker is configured explicitly.
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if target == "x86_64-unknown-linux-gnu" && env::var_os(&linker_var).is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
        if env::var("PROFILE").as_deref() == Ok("release") {
            discard_unwind_tables();
        }
    }
}

/// The release binary never unwinds (panic = "abort", and src/no_unwind.rs
/// replaces the unwinder), so its unwind tables are dead weight (-20 KB).
/// A linker script that only adds a /DISCARD/ rule keeps lld's default
/// layout (`INSERT`). Release builds only (the profile aborts on panic):
/// debug and test builds unwind.
fn discard_unwind_tables() {
    let Some(out) = env::var_os("OUT_DIR") else {
        return;
    };
    let script = std::path::Path::new(&out).join("discard_unwind.ld");
    let rule = "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) } } INSERT AFTER .text;\n";
    if std::fs::write(&script, rule).is_ok() {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}

/// `getconf GNU_LIBC_VERSION`, e.g. "glibc 2.36"; empty if unavailable.
fn host_glibc() -> String {
    Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn glibc_at_least(version: &str, min: (u32, u32)) -> bool {
    let Some(v) = version.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}
