//! Link options for the port binary that shrink it without giving up PIE
//! (ASLR); what each saves is in docs/performance.md, "Figures moved from
//! code comments", and docs/nerves.md, "Sizes". Only for
//! glibc targets (`*-linux-gnu*`), native or cross, and only those options
//! the linker is seen to accept.
//!
//! Which linker runs depends on the toolchain, not on the target: rustup's
//! Rust ≥ 1.90 links x86_64-unknown-linux-gnu with its bundled rust-lld,
//! while distribution builds (Debian's rustc), cross builds (Nerves' gcc)
//! and older toolchains let `cc` call GNU ld, which rejects `--icf=all`
//! and, on some architectures, ignores `-z pack-relative-relocs` with a
//! warning; and a configured linker (`CARGO_TARGET_<TRIPLE>_LINKER`, `-C
//! linker=` in RUSTFLAGS) can be anything. Version numbers or the presence
//! of rust-lld in the sysroot do not tell which one will run, and the
//! target spec (`linker-flavor`) needs nightly to print. So each option is
//! probed: the build script links an empty program with the same rustc,
//! target, RUSTFLAGS and linker, and passes only what that link accepted
//! (with `--fatal-warnings`, unless the plain link already warns); a
//! native build also runs the result. The probes run
//! only when the build script does (on a change to this file or to the
//! variables below), not on every build.
//!
//! A cross build for a Nerves board also links against the system's
//! sysroot (`NERVES_SDK_SYSROOT`), as its `LDFLAGS` say.

use std::env;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
    for var in [
        "MUONTRAP_PLAIN_LINK",
        "NERVES_SDK_SYSROOT",
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
    let cross = target != host;
    let sysroot = cross
        .then(|| env::var("NERVES_SDK_SYSROOT").ok())
        .flatten()
        .filter(|s| !s.is_empty());
    if let Some(sysroot) = &sysroot {
        println!("cargo:rustc-link-arg-bins=--sysroot={sysroot}");
    }
    if !target.contains("-linux-gnu") || env::var_os("MUONTRAP_PLAIN_LINK").is_some() {
        return;
    }

    let probe = Probe::new(&target, cross, sysroot.as_deref());
    // Groups of linker arguments, each wanted as a whole or not at all.
    let mut wanted: Vec<Vec<String>> = Vec::new();
    // DT_RELR packs the relative relocations of a PIE (smaller, and less
    // work for the dynamic loader). The binary then needs glibc 2.36
    // where it runs: the glibc it is linked against, the build host's for
    // a native build, the board's sysroot for a cross build.
    if glibc_at_least(&probe.glibc(), (2, 36)) {
        wanted.push(vec!["-Wl,-z,pack-relative-relocs".into()]);
    }
    // Identical code folding: lld and gold only, GNU ld refuses it.
    wanted.push(vec!["-Wl,--icf=all".into()]);
    if env::var("PROFILE").as_deref() == Ok("release") {
        if let Some(args) = discard_unwind_tables() {
            wanted.push(args);
        }
    }

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

/// The release binary never unwinds (panic = "abort"; src/no_unwind.rs
/// replaces the unwinder where it can), so its unwind tables are dead
/// weight: `.eh_frame`, and ARM's `.ARM.exidx`/`.ARM.extab`. Where the
/// real unwinder stays, a backtrace just finds no frame. A linker script
/// that only adds a /DISCARD/ rule keeps the default layout (`INSERT`; lld
/// and GNU ld both accept it). Release builds only (the profile aborts on
/// panic): debug and test builds unwind.
fn discard_unwind_tables() -> Option<Vec<String>> {
    let out = env::var_os("OUT_DIR")?;
    let script = Path::new(&out).join("discard_unwind.ld");
    let rule = "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) \
                *(.ARM.exidx*) *(.ARM.extab*) } } INSERT AFTER .text;\n";
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
    /// The C compiler driver that links (and whose headers are the target's).
    linker: String,
    sysroot: Option<String>,
    /// A cross-built program cannot run here: only its link is checked.
    cross: bool,
    /// Probe links with `--fatal-warnings`, so that an option GNU ld only
    /// warns about and ignores counts as refused; off if the plain link
    /// already warns.
    strict: bool,
}

impl Probe {
    fn new(target: &str, cross: bool, sysroot: Option<&str>) -> Probe {
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
        let linker = env::var("RUSTC_LINKER").ok().filter(|l| !l.is_empty());
        if let Some(linker) = &linker {
            base.push(format!("-Clinker={linker}"));
        }
        if let Some(sysroot) = sysroot {
            base.push(format!("-Clink-arg=--sysroot={sysroot}"));
        }
        let mut probe = Probe {
            rustc,
            dir,
            base,
            linker: linker.unwrap_or_else(|| "cc".into()),
            sysroot: sysroot.map(String::from),
            cross,
            strict: true,
        };
        probe.strict = probe.links(&[]);
        probe
    }

    /// True if the empty program links with `args` (without a warning, when
    /// strict) and, natively, then runs.
    fn links(&self, args: &[String]) -> bool {
        let src = self.dir.join("link_probe.rs");
        let exe = self.dir.join("link_probe");
        if std::fs::write(&src, "fn main() {}\n").is_err() {
            return false;
        }
        let _ = std::fs::remove_file(&exe);
        let linked = Command::new(&self.rustc)
            .args(&self.base)
            // GNU ld warns while it reads an option: this must come first.
            .args(self.strict.then_some("-Clink-arg=-Wl,--fatal-warnings"))
            .args(args.iter().map(|a| format!("-Clink-arg={a}")))
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        linked
            && (self.cross
                || Command::new(&exe)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()))
    }

    /// The version of the glibc the program links against, as its headers
    /// say ("2 36"); empty if the linker's preprocessor cannot tell.
    fn glibc(&self) -> String {
        let mut cmd = Command::new(&self.linker);
        if let Some(sysroot) = &self.sysroot {
            cmd.arg(format!("--sysroot={sysroot}"));
        }
        let child = cmd
            .args(["-E", "-P", "-x", "c", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return String::new();
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"#include <features.h>\n__GLIBC__ __GLIBC_MINOR__\n");
        }
        child
            .wait_with_output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                let out = String::from_utf8_lossy(&o.stdout).into_owned();
                out.lines()
                    .rfind(|l| !l.trim().is_empty())
                    .map(String::from)
            })
            .unwrap_or_default()
    }
}

/// True if `version` ("2 36", as `Probe::glibc` gives it) is at least `min`.
fn glibc_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split_whitespace().map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}
