//! `MuonTrap.Nif`: reads and writes a daemon's cgroup v2 interface files
//! from inside the BEAM, without a round trip through the port process.
//!
//! Every function runs on a dirty IO scheduler because cgroupfs reads can
//! block (e.g. on cgroup locks). Nothing here should panic; should it
//! anyway, the `release-nif` profile unwinds so rustler raises an Erlang
//! exception instead of aborting the VM.

mod cgroup_fs;
mod encode;
mod errno;

use cgroup_fs::{Failure, Root};
use muontrap_cgroup::{knobs, stats};
use rustler::types::binary::NewBinary;
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

mod atoms {
    rustler::atoms! { ok, error, no_cgroup, max }
}

fn error_term<'a>(env: Env<'a>, failure: Failure) -> NifResult<Term<'a>> {
    let reason = match failure {
        Failure::NoCgroup => atoms::no_cgroup(),
        Failure::Posix(name) => Atom::from_str(env, name)?,
    };
    Ok((atoms::error(), reason).encode(env))
}

/// `cgget(path | nil, file) :: {:ok, binary} | {:error, posix | :no_cgroup}`
#[rustler::nif(schedule = "DirtyIo")]
fn cgget<'a>(env: Env<'a>, path: Option<Binary<'a>>, file: Binary<'a>) -> NifResult<Term<'a>> {
    match cgroup_fs::read(path.as_deref(), &file) {
        Ok(bytes) => {
            let mut bin = NewBinary::new(env, bytes.len());
            bin.as_mut_slice().copy_from_slice(&bytes);
            let contents: Term = bin.into();
            Ok((atoms::ok(), contents).encode(env))
        }
        Err(failure) => error_term(env, failure),
    }
}

/// `cgset(path | nil, file, value) :: :ok | {:error, posix | :no_cgroup}`
#[rustler::nif(schedule = "DirtyIo")]
fn cgset<'a>(
    env: Env<'a>,
    path: Option<Binary<'a>>,
    file: Binary<'a>,
    value: Binary<'a>,
) -> NifResult<Term<'a>> {
    match cgroup_fs::write(path.as_deref(), &file, &value) {
        Ok(()) => Ok(atoms::ok().encode(env)),
        Err(failure) => error_term(env, failure),
    }
}

/// `cgroup_config(path | nil) :: %{atom => term}`; unreadable or
/// unparseable knobs are omitted, and an invalid path gives `%{}` just like
/// a missing cgroup.
#[rustler::nif(schedule = "DirtyIo")]
fn cgroup_config<'a>(env: Env<'a>, path: Option<Binary<'a>>) -> NifResult<Term<'a>> {
    let mut map = Term::map_new(env);
    let Ok(dir) = cgroup_fs::cgroup_dir(path.as_deref(), Root::Allow) else {
        return Ok(map);
    };
    for knob in knobs::KNOBS {
        let Some(text) = cgroup_fs::read_text(&dir, knob.file) else {
            continue;
        };
        if let Ok(Some(value)) = knob.kind.parse(&text) {
            let key = Atom::from_str(env, knob.key)?;
            map = map.map_put(key, encode::knob_value(env, &value))?;
        }
    }
    Ok(map)
}

/// `statistics(path | nil) :: %{String.t => term}`; missing or
/// unparseable files are omitted.
#[rustler::nif(schedule = "DirtyIo")]
fn statistics<'a>(env: Env<'a>, path: Option<Binary<'a>>) -> NifResult<Term<'a>> {
    let mut map = Term::map_new(env);
    let Ok(dir) = cgroup_fs::cgroup_dir(path.as_deref(), Root::Allow) else {
        return Ok(map);
    };
    for stat in stats::STATS {
        let Some(text) = cgroup_fs::read_text(&dir, stat.file) else {
            continue;
        };
        if let Ok(value) = stat.kind.parse(&text) {
            map = map.map_put(stat.file, encode::stat_value(env, &value)?)?;
        }
    }
    Ok(map)
}

rustler::init!("Elixir.MuonTrap.Nif");
