//! Link options for the port binary that shrink it without giving up PIE
//! (ASLR); what each saves is in docs/performance.md, "Figures moved from
//! code comments". Only for native glibc builds
//! where they are known to work; cross builds (Nerves) link as before.
//!
//! Which linker runs depends on the toolchain, not on the target: rustup's
//! Rust ≥ 1.90 links x86_64-unknown-linux-gnu with its bundled rust-lld,
//! while distribution builds (Debian's rustc) and older toolchains let `cc`
//! call GNU ld, which rejects `--icf=all`, and a configured linker
//! (`CARGO_TARGET_<TRIPLE>_LINKER`, `-C linker=` in RUSTFLAGS) can be
//! anything. Version numbers or the presence of rust-lld in the sysroot do
//! not tell which one will run, and the target spec (`linker-flavor`) needs
//! nightly to print. So each option is probed: the build script links (and
//! runs) an empty program with the same rustc, target, RUSTFLAGS and
//! linker, and passes only what that link accepted. The probes run only
//! when the build script does (on a change to this file or to the
//! variables below), not on every build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "MUONTRAP_PLAIN_LINK",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    let upper = target.to_uppercase().replace('-', "_");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_{upper}_LINKER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_{upper}_RUSTFLAGS");
    let native_gnu = target == host && target.ends_with("-linux-gnu");
    if !native_gnu || env::var_os("MUONTRAP_PLAIN_LINK").is_some() {
        return;
    }

    // Groups of linker arguments, each wanted as a whole or not at all.
    let mut wanted: Vec<Vec<String>> = Vec::new();
    // DT_RELR packs the relative relocations of a PIE (smaller, and less
    // work for the dynamic loader). The binary then needs glibc 2.36,
    // which the build host has, as the binary runs where it was built.
    // (GNU ld ≥ 2.38 and lld both support it.)
    if glibc_at_least(&host_glibc(), (2, 36)) {
        wanted.push(vec!["-Wl,-z,pack-relative-relocs".into()]);
    }
    if target == "x86_64-unknown-linux-gnu" {
        // Identical code folding: lld and gold only, GNU ld refuses the
        // option.
        wanted.push(vec!["-Wl,--icf=all".into()]);
        if env::var("PROFILE").as_deref() == Ok("release") {
            if let Some(args) = discard_unwind_tables() {
                wanted.push(args);
            }
        }
    }
    if wanted.is_empty() {
        return;
    }

    let probe = Probe::new(&target);
    // The usual case (every group accepted) costs one probe; otherwise each
    // group is tried on its own.
    let chosen: Vec<Vec<String>> = if probe.links(&wanted.concat()) {
        wanted
    } else {
        wanted.into_iter().filter(|g| probe.links(g)).collect()
    };
    for arg in chosen.concat() {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// The release binary never unwinds (panic = "abort", and src/no_unwind.rs
/// replaces the unwinder), so its unwind tables are dead weight.
/// A linker script that only adds a /DISCARD/ rule keeps the default
/// layout (`INSERT`; lld and GNU ld both accept it). Release builds only
/// (the profile aborts on panic): debug and test builds unwind.
fn discard_unwind_tables() -> Option<Vec<String>> {
    let out = env::var_os("OUT_DIR")?;
    let script = Path::new(&out).join("discard_unwind.ld");
    let rule = "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) } } INSERT AFTER .text;\n";
    std::fs::write(&script, rule).ok()?;
    Some(vec![
        "-Wl,--no-eh-frame-hdr".into(),
        format!("-Wl,-T,{}", script.display()),
    ])
}

/// Links an empty program the way cargo links the port binary.
struct Probe {
    rustc: PathBuf,
    dir: PathBuf,
    base: Vec<String>,
}

impl Probe {
    fn new(target: &str) -> Probe {
        let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
        let dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| ".".into()));
        let mut base: Vec<String> = vec![
            "--edition=2021".into(),
            "--crate-type=bin".into(),
            format!("--target={target}"),
            "-Cpanic=abort".into(),
        ];
        // The flags cargo gives rustc for this target (RUSTFLAGS and
        // friends), and the linker it resolved from its configuration.
        if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
            base.extend(
                flags
                    .split('\x1f')
                    .filter(|f| !f.is_empty())
                    .map(String::from),
            );
        }
        if let Some(linker) = env::var_os("RUSTC_LINKER") {
            base.push(format!("-Clinker={}", linker.to_string_lossy()));
        }
        Probe { rustc, dir, base }
    }

    /// True if the empty program links with `args` and then runs.
    fn links(&self, args: &[String]) -> bool {
        let src = self.dir.join("link_probe.rs");
        let exe = self.dir.join("link_probe");
        if std::fs::write(&src, "fn main() {}\n").is_err() {
            return false;
        }
        let _ = std::fs::remove_file(&exe);
        let linked = Command::new(&self.rustc)
            .args(&self.base)
            .args(args.iter().map(|a| format!("-Clink-arg={a}")))
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        linked
            && Command::new(&exe)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
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
