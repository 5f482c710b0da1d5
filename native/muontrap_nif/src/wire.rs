//! What the Elixir library and the port binary must agree on, from
//! `muontrap_wire`, as Erlang terms: the frames `MuonTrap.Protocol`
//! decodes and encodes, and the tables and defaults `MuonTrap.Signal`,
//! `MuonTrap.Options` and `MuonTrap.PortBinary` check against. Elixir
//! keeps no number of its own (docs/protocol.md, "Where the constants
//! live").
//!
//! All run on a normal scheduler: a frame is a few bytes, and
//! `frame_decode` runs on every message of every command (microseconds,
//! docs/performance.md).

use muontrap_cgroup::path::{validate_cgroup_path, PathError};
use muontrap_wire::frame::{self, Signaled, ToBeam, ToPort, Watchdog};
use muontrap_wire::{defaults, rlimit, signals};
use rustler::types::binary::NewBinary;
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

use crate::errno;

mod atoms {
    rustler::atoms! {
        ok, error, started, exit, exec_error, notify, watchdog, signaled,
        expired, triggered, not_running, refused, bad_frame,
        signals, sigrtmax, rlimits, delay_to_sigkill, min_window,
        platform, os, portable, cgroups, missing_rlimits, end_notices,
        empty, absolute, dot_component, empty_component, nul, separator,
    }
}

/// `part`, a slice of `frame`, as a sub-binary sharing its bytes.
fn sub<'a>(frame: &Binary<'a>, part: &[u8]) -> NifResult<Binary<'a>> {
    let offset = part.as_ptr() as usize - frame.as_slice().as_ptr() as usize;
    frame.make_subbinary(offset, part.len())
}

/// An exec errno as its POSIX atom (`:enoent`), or the number for one the
/// table lacks.
fn errno_term<'a>(env: Env<'a>, n: u32) -> NifResult<Term<'a>> {
    let name = i32::try_from(n).ok().and_then(errno::name);
    Ok(match name {
        Some(name) => Atom::from_str(env, name)?.encode(env),
        None => n.encode(env),
    })
}

/// `frame_decode(frame) :: message | :bad_frame`, `message` as
/// `MuonTrap.Protocol.message()` types it.
#[rustler::nif]
fn frame_decode<'a>(env: Env<'a>, frame: Binary<'a>) -> NifResult<Term<'a>> {
    decode(env, frame)
}

/// A frame as `frame_decode` returns it.
pub fn decode<'a>(env: Env<'a>, frame: Binary<'a>) -> NifResult<Term<'a>> {
    let Some(msg) = ToBeam::decode(frame.as_slice()) else {
        return Ok(atoms::bad_frame().encode(env));
    };
    Ok(match msg {
        ToBeam::Started(pid) => (atoms::started(), pid).encode(env),
        ToBeam::Exit(status) => (atoms::exit(), status).encode(env),
        ToBeam::Error(text) => (atoms::error(), sub(&frame, text)?).encode(env),
        ToBeam::ExecError(n) => (atoms::exec_error(), errno_term(env, n)?).encode(env),
        ToBeam::Notify(body) => {
            let pairs = frame::assignments(body)
                .map(|(k, v)| Ok((sub(&frame, k)?, sub(&frame, v)?)))
                .collect::<NifResult<Vec<_>>>()?;
            (atoms::notify(), pairs).encode(env)
        }
        ToBeam::Watchdog(w) => {
            let why = match w {
                Watchdog::Timeout => atoms::expired(),
                Watchdog::Trigger => atoms::triggered(),
            };
            (atoms::watchdog(), why).encode(env)
        }
        ToBeam::Signaled(s) => {
            let reply = match s {
                Signaled::Sent => atoms::ok(),
                Signaled::NotRunning => atoms::not_running(),
                Signaled::Refused => atoms::refused(),
            };
            (atoms::signaled(), reply).encode(env)
        }
    })
}

fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut bin = NewBinary::new(env, bytes.len());
    bin.as_mut_slice().copy_from_slice(bytes);
    bin.into()
}

/// `frame_terminate() :: binary`: the TERMINATE request.
#[rustler::nif]
fn frame_terminate(env: Env<'_>) -> Term<'_> {
    binary(env, &ToPort::Terminate.encode())
}

/// `frame_signal(number) :: binary`: the SIGNAL request for `number`.
#[rustler::nif]
fn frame_signal(env: Env<'_>, number: u32) -> Term<'_> {
    binary(env, &ToPort::Signal(number).encode())
}

/// `nif_constants() :: %{signals: [{atom, pos_integer}], sigrtmax: pos_integer,
/// rlimits: [atom], platform: map, delay_to_sigkill: non_neg_integer,
/// min_window: pos_integer}`: the signal names (`:sighup`, ... `:sigrtmin`,
/// `:sigrtmax`), the highest signal number, the rlimit resources this
/// system has, what it can do (`platform/1`), the
/// port's `--delay-to-sigkill` default and `--stdio-window` minimum.
/// Elixir fetches it once per VM (`MuonTrap.Nif.constants/0`).
#[rustler::nif]
fn nif_constants(env: Env<'_>) -> NifResult<Term<'_>> {
    let mut named: Vec<(Atom, i32)> = Vec::new();
    let realtime: Vec<(&str, i32)> = signals::realtime_range()
        .map(|(min, max)| vec![("RTMIN", min), ("RTMAX", max)])
        .unwrap_or_default();
    for (name, n) in signals::SIGNALS.iter().chain(&realtime) {
        let atom = Atom::from_str(env, &format!("sig{}", name.to_ascii_lowercase()))?;
        named.push((atom, *n));
    }
    let rlimits = rlimit::RESOURCES
        .iter()
        .filter(|(_, r)| r.available())
        .map(|(name, _)| Atom::from_str(env, name))
        .collect::<NifResult<Vec<Atom>>>()?;
    Term::map_new(env)
        .map_put(atoms::signals(), named)?
        .map_put(atoms::sigrtmax(), signals::sigrtmax())?
        .map_put(atoms::rlimits(), rlimits)?
        .map_put(atoms::platform(), platform(env)?)?
        .map_put(atoms::delay_to_sigkill(), defaults::DELAY_TO_SIGKILL_MS)?
        .map_put(atoms::min_window(), defaults::MIN_WINDOW)
}

/// The `platform` of `nif_constants/0`: what this build of the library
/// can do, which `MuonTrap.Options` and `MuonTrap.Cgroup` check options
/// against. `%{os: :linux | :macos | :freebsd | atom, portable: boolean,
/// cgroups: boolean, notify: boolean, end_notices: boolean,
/// missing_rlimits: [atom]}`: `portable`
/// is a Linux build without Linux's own facilities (the `portable`
/// feature, docs/portability.md); `cgroups`, `notify` (sd_notify and
/// the watchdog) and `end_notices` (`crate::notices`) need those; `missing_rlimits` are the resources of
/// `:rlimits` this system lacks.
fn platform(env: Env<'_>) -> NifResult<Term<'_>> {
    let linux_native = cfg!(linux_native);
    let missing = rlimit::RESOURCES
        .iter()
        .filter(|(_, r)| !r.available())
        .map(|(name, _)| Atom::from_str(env, name))
        .collect::<NifResult<Vec<Atom>>>()?;
    Term::map_new(env)
        .map_put(atoms::os(), Atom::from_str(env, std::env::consts::OS)?)?
        .map_put(
            atoms::portable(),
            cfg!(target_os = "linux") && !linux_native,
        )?
        .map_put(atoms::cgroups(), linux_native)?
        .map_put(atoms::notify(), linux_native)?
        .map_put(atoms::end_notices(), linux_native)?
        .map_put(atoms::missing_rlimits(), missing)
}

/// `cgroup_path_check(path) :: :ok | {:error, reason}`: the check the
/// supervisor and the NIF's own file access make of a cgroup path
/// (`muontrap_cgroup::path`), `reason` one of `:empty`, `:absolute`,
/// `:dot_component`, `:empty_component`, `:nul`.
#[rustler::nif]
fn cgroup_path_check<'a>(env: Env<'a>, path: Binary<'a>) -> NifResult<Term<'a>> {
    // Any bytes, as the port takes them: a replacement character is no
    // '/', '.' or NUL, so the checks see what they would on the bytes.
    let text = String::from_utf8_lossy(path.as_slice());
    Ok(match validate_cgroup_path(&text) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => {
            let reason = match e {
                PathError::Empty => atoms::empty(),
                PathError::Absolute => atoms::absolute(),
                PathError::DotComponent => atoms::dot_component(),
                PathError::EmptyComponent => atoms::empty_component(),
                PathError::Nul => atoms::nul(),
                PathError::Separator => atoms::separator(),
            };
            (atoms::error(), reason).encode(env)
        }
    })
}
