//! `MuonTrap.Nif`: reads and writes a daemon's cgroup interface files (v2,
//! or v1 reported under the v2 names)
//! from inside the BEAM, without a round trip through the port process;
//! and a command's BEAM-owned stdio (`stdio`): the pipe `MuonTrap.cmd/3`
//! and `MuonTrap.Daemon` read its output from, handed to the port binary
//! as a capability over a Unix socket (`fdpass`, `spawner`).
//!
//! `cgget`, `cgset`, `cleanup` and `layout` run on a dirty IO scheduler:
//! a write can make the kernel reclaim memory or wait on cgroup locks, and
//! they open files by path. `statistics` and `cgroup_config` run on a
//! normal scheduler: they re-read a daemon's already open interface files
//! (see `OpenFiles`), which the kernel generates from memory, so a whole
//! call stays far inside the 1 ms a NIF may hold a scheduler, and handing
//! it to a dirty scheduler and back would cost more than the call (figures
//! in docs/performance.md, "cgroup reads"). They report the time they took
//! with `enif_consume_timeslice`. Nothing here should panic; should it
//! anyway, the `release-nif` profile unwinds so rustler raises an Erlang
//! exception instead of aborting the VM.

mod cgroup_fs;
mod encode;
mod errno;
mod executable;
mod fdpass;
mod init;
mod listeners;
mod notices;
mod object;
mod open_files;
mod pipe;
mod settings;
mod spawner;
mod stdio;
mod sys;
mod wire;

use cgroup_fs::{Failure, Group, Root};
use muontrap_cgroup::layout::{Hierarchy, Layout};
use muontrap_cgroup::{knobs, parents, stats, v1};
use object::Object;
use open_files::OpenFiles;
use rustler::types::binary::NewBinary;
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};
use std::time::Instant;

mod atoms {
    rustler::atoms! {
        ok, error, no_cgroup, max, kind, v1, v2, mount, controllers, own,
        unknown_key, bad_value, no_v1_equivalent, swap_needs_memory_max,
    }
}

fn error_term<'a>(env: Env<'a>, failure: Failure) -> NifResult<Term<'a>> {
    let reason = match failure {
        Failure::NoCgroup => atoms::no_cgroup(),
        Failure::Posix(name) => Atom::from_str(env, name)?,
    };
    Ok((atoms::error(), reason).encode(env))
}

fn group<'b>(path: &'b Option<Binary<'_>>, beneath_own_cgroup: bool) -> Option<Group<'b>> {
    path.as_ref().map(|p| Group {
        path: p.as_slice(),
        beneath_own_cgroup,
    })
}

/// `cgget(path | nil, beneath_own_cgroup, file) :: {:ok, binary} | {:error, posix | :no_cgroup}`;
/// a v2 name mapped to v1 files reads as the v2 file would (`cgroup_fs::read`).
#[rustler::nif(schedule = "DirtyIo")]
fn cgget<'a>(
    env: Env<'a>,
    path: Option<Binary<'a>>,
    beneath_own_cgroup: bool,
    file: Binary<'a>,
) -> NifResult<Term<'a>> {
    match cgroup_fs::read(group(&path, beneath_own_cgroup), &file) {
        Ok(bytes) => {
            let mut bin = NewBinary::new(env, bytes.len());
            bin.as_mut_slice().copy_from_slice(&bytes);
            let contents: Term = bin.into();
            Ok((atoms::ok(), contents).encode(env))
        }
        Err(failure) => error_term(env, failure),
    }
}

/// `cgset(path | nil, beneath_own_cgroup, file, value) :: :ok | {:error, posix | :no_cgroup}`;
/// a v2 setting mapped to v1 files is converted and written there (`cgroup_fs::write`).
#[rustler::nif(schedule = "DirtyIo")]
fn cgset<'a>(
    env: Env<'a>,
    path: Option<Binary<'a>>,
    beneath_own_cgroup: bool,
    file: Binary<'a>,
    value: Binary<'a>,
) -> NifResult<Term<'a>> {
    match cgroup_fs::write(group(&path, beneath_own_cgroup), &file, &value) {
        Ok(()) => Ok(atoms::ok().encode(env)),
        Err(failure) => error_term(env, failure),
    }
}

/// The group to read from and the host's layout; `None` (an empty map for
/// the caller) without a cgroup, for an invalid path, or without cgroupfs.
fn readable(
    path: &Option<Binary<'_>>,
    beneath_own_cgroup: bool,
) -> Option<(cgroup_fs::Resolved, &'static Layout)> {
    let group = cgroup_fs::resolve(group(path, beneath_own_cgroup), Root::Allow).ok()?;
    Some((group, cgroup_fs::layout().ok()?))
}

/// Tells the scheduler, when dropped, how much of its 1 ms timeslice a
/// NIF running on a normal scheduler used.
struct Timeslice<'a> {
    env: Env<'a>,
    started: Instant,
}

impl<'a> Timeslice<'a> {
    fn start(env: Env<'a>) -> Self {
        Timeslice {
            env,
            started: Instant::now(),
        }
    }
}

impl Drop for Timeslice<'_> {
    fn drop(&mut self) {
        let percent = (self.started.elapsed().as_micros() / 10).clamp(1, 100) as i32;
        rustler::schedule::consume_timeslice(self.env, percent);
    }
}

/// Reads interface file `file` of `group` in hierarchy `h`, through the
/// cache of open files when there is one.
fn read_with(
    files: &Option<Object<OpenFiles>>,
    group: &cgroup_fs::Resolved,
    h: Option<&Hierarchy>,
    file: &str,
) -> Option<String> {
    match files {
        Some(open) => open.read_text(group, h?, file),
        None => cgroup_fs::read_text(&group.dir_in(h?)?, file),
    }
}

/// `cgroup_config(path | nil, beneath_own_cgroup, open_files | nil) :: %{atom => term}`;
/// unreadable or unparseable knobs are omitted, and an invalid path gives
/// `%{}` just like a missing cgroup. On v1 hierarchies the v1 files are
/// read and reported under the v2 keys. With `open_files`, files stay open.
#[rustler::nif]
fn cgroup_config<'a>(
    env: Env<'a>,
    path: Option<Binary<'a>>,
    beneath_own_cgroup: bool,
    files: Option<Object<OpenFiles>>,
) -> NifResult<Term<'a>> {
    let _slice = Timeslice::start(env);
    let mut map = Term::map_new(env);
    let Some((group, layout)) = readable(&path, beneath_own_cgroup) else {
        return Ok(map);
    };
    let read = |file: &str| read_with(&files, &group, layout.hierarchy_for_file(file), file);
    for knob in knobs::KNOBS {
        let controller = knob.file.split('.').next().unwrap_or("");
        let value = if layout.v1_for(controller).is_some() {
            // Bound to v1: only keys with a v1 equivalent exist.
            v1::read_knob(knob.key, &read)
        } else {
            read(knob.file).and_then(|text| knob.kind.parse(&text).ok().flatten())
        };
        if let Some(value) = value {
            let key = Atom::from_str(env, knob.key)?;
            map = map.map_put(key, encode::knob_value(env, &value))?;
        }
    }
    Ok(map)
}

/// `open_files() :: reference`: a cache of open statistics and knob files
/// for one daemon (see `OpenFiles`); closed when the last reference is
/// collected.
#[rustler::nif]
fn open_files() -> Object<OpenFiles> {
    Object::new(OpenFiles::default())
}

/// `statistics(path | nil, beneath_own_cgroup, open_files | nil) :: %{String.t => term}`;
/// missing or unparseable files are omitted. v1 figures are reported under
/// the v2 file names. With `open_files`, files stay open between calls.
#[rustler::nif]
fn statistics<'a>(
    env: Env<'a>,
    path: Option<Binary<'a>>,
    beneath_own_cgroup: bool,
    files: Option<Object<OpenFiles>>,
) -> NifResult<Term<'a>> {
    let _slice = Timeslice::start(env);
    let mut map = Term::map_new(env);
    let Some((group, layout)) = readable(&path, beneath_own_cgroup) else {
        return Ok(map);
    };
    let read = |file: &str| read_with(&files, &group, layout.hierarchy_for_file(file), file);
    for stat in stats::STATS {
        let from_v1 = v1::stat_controller(stat.file)
            .filter(|c| layout.v1_for(c).is_some())
            .and_then(|_| v1::read_stat(stat.file, &read));
        let value = from_v1.or_else(|| {
            let text = read_with(&files, &group, layout.v2.as_ref(), stat.file)?;
            stat.kind.parse(&text).ok()
        });
        if let Some(value) = value {
            map = map.map_put(stat.file, encode::stat_value(env, &value)?)?;
        }
    }
    Ok(map)
}

/// Removes the parent levels of group `path` that a port binary made and
/// that are now empty, in every hierarchy, as the port binary does
/// (`muontrap_cgroup::parents`: the same mark, the same walk).
fn remove_parents(path: &[u8], beneath_own_cgroup: bool) {
    let group = Group {
        path,
        beneath_own_cgroup,
    };
    let (Ok(group), Ok(layout)) = (
        cgroup_fs::resolve(Some(group), Root::Deny),
        cgroup_fs::layout(),
    ) else {
        return;
    };
    let depth = path.split(|&b| b == b'/').count();
    for h in layout.v2.iter().chain(&layout.v1) {
        if let Some(leaf) = group.dir_in(h) {
            parents::remove(&parents::of_leaf(&leaf, depth), &[], &mut |_| {});
        }
    }
}

/// `cleanup(path, beneath_own_cgroup) :: {:ok, [leftover_dir]} | {:error, reason}`:
/// SIGKILLs whatever is left in the group in every hierarchy and removes
/// its directories, then the parent levels a port binary made that are
/// now empty (after the port binary died without doing it).
#[rustler::nif(schedule = "DirtyIo")]
fn cleanup<'a>(
    env: Env<'a>,
    path: Option<Binary<'a>>,
    beneath_own_cgroup: bool,
) -> NifResult<Term<'a>> {
    match cgroup_fs::kill_and_remove(group(&path, beneath_own_cgroup)) {
        Ok(left) => {
            if let (true, Some(p)) = (left.is_empty(), &path) {
                remove_parents(p.as_slice(), beneath_own_cgroup);
            }
            let left: Vec<String> = left
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            Ok((atoms::ok(), left).encode(env))
        }
        Err(failure) => error_term(env, failure),
    }
}

/// `layout() :: %{kind: :v2 | :hybrid | :v1 | :none, v2: hierarchy | nil, v1: [hierarchy]}`
/// with `hierarchy :: %{mount: String.t, controllers: [String.t], own: String.t | nil}`:
/// the layout the other functions use, cached as `cgroup_fs::layout` says.
#[rustler::nif(schedule = "DirtyIo")]
fn layout(env: Env) -> NifResult<Term> {
    let none = Layout::default();
    let layout = cgroup_fs::layout().unwrap_or(&none);
    let hierarchy = |h: &Hierarchy| -> NifResult<Term> {
        Term::map_new(env)
            .map_put(atoms::mount(), h.mount_point.to_string_lossy().as_ref())?
            .map_put(atoms::controllers(), &h.controllers)?
            .map_put(atoms::own(), h.own.as_deref())
    };
    let v2 = match &layout.v2 {
        Some(h) => hierarchy(h)?,
        None => rustler::types::atom::nil().encode(env),
    };
    let v1 = layout
        .v1
        .iter()
        .map(hierarchy)
        .collect::<NifResult<Vec<Term>>>()?;
    Term::map_new(env)
        .map_put(atoms::kind(), Atom::from_str(env, layout.kind().name())?)?
        .map_put(atoms::v2(), v2)?
        .map_put(atoms::v1(), v1)
}

/// Registers the resource types, at `load` and at `upgrade` (src/init.rs).
fn register_types(env: Env) -> bool {
    stdio::register(env)
        && object::register::<OpenFiles>(env, &object::type_name("MuonTrap.OpenFiles"))
        && object::register::<listeners::Listeners>(env, &object::type_name("MuonTrap.Listeners"))
        && spawner::register(env)
}
