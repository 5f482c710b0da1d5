//! rustler decoders for what `command!` cannot derive: each a small
//! `Decoder` composed from rustler's own (for binaries, integers, atoms,
//! tuples, lists and maps). Feature `nif`, which only the NIF enables.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use rustler::{Atom, Binary, Decoder, Error, NifResult, NifTuple, Term};

use crate::{
    Bytes, CgroupWrites, EnvBlock, Names, Notify, Resource, Rlimit, Rlimits, Signal, INFINITY,
};

mod atoms {
    rustler::atoms! { infinity, latin1, notify }
}

/// `key`'s value in the map `term`, decoded; `None` when it is missing or
/// `nil`. A value that does not decode raises a message naming the key
/// (`MuonTrap.Options` validated it: a bug, not a user's error).
pub fn field<'a, T: Decoder<'a>>(term: Term<'a>, key: Atom, name: &str) -> NifResult<Option<T>> {
    let Ok(value) = term.map_get(key) else {
        if term.is_map() {
            return Ok(None);
        }
        return Err(Error::BadArg);
    };
    if value.decode::<Atom>().ok() == Some(rustler::types::atom::nil()) {
        return Ok(None);
    }
    value
        .decode()
        .map(Some)
        .map_err(|_| Error::RaiseTerm(Box::new(format!("invalid command option :{name}"))))
}

impl<'a> Decoder<'a> for Bytes {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let bin: Binary = term.decode()?;
        Ok(Bytes(OsString::from_vec(bin.as_slice().to_vec())))
    }
}

/// A signal's number, or its name as an atom (`:sigterm`, `:term`).
impl<'a> Decoder<'a> for Signal {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        if let Ok(n) = term.decode::<i32>() {
            return Ok(Signal(n));
        }
        let name = term.atom_to_string()?;
        muontrap_wire::signals::by_name(&name)
            .map(Signal)
            .ok_or(Error::BadArg)
    }
}

/// An rlimit resource by its atom (`:nofile`).
struct ResourceName(Resource);

impl<'a> Decoder<'a> for ResourceName {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let name = term.atom_to_string()?;
        Resource::by_name(&name)
            .map(ResourceName)
            .ok_or(Error::BadArg)
    }
}

impl std::hash::Hash for ResourceName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.raw().hash(state);
    }
}

impl PartialEq for ResourceName {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for ResourceName {}

/// A limit: an integer or `:infinity`.
struct Limit(u64);

impl<'a> Decoder<'a> for Limit {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        if term.decode::<Atom>().ok() == Some(atoms::infinity()) {
            return Ok(Limit(INFINITY));
        }
        term.decode().map(Limit)
    }
}

/// `%{resource => {soft, hard}}`.
impl<'a> Decoder<'a> for Rlimits {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let map: HashMap<ResourceName, (Limit, Limit)> = term.decode()?;
        let mut v: Vec<Rlimit> = map
            .into_iter()
            .map(|(r, (soft, hard))| Rlimit {
                resource: r.0,
                soft: soft.0,
                hard: hard.0,
            })
            .collect();
        // A map has no order: the table's, so every start is the same.
        v.sort_by_key(|r| r.resource.raw());
        Ok(Rlimits(v))
    }
}

#[derive(NifTuple)]
struct Writes(Vec<String>, Vec<(String, String)>);

/// What `MuonTrap.Cgroup.translate/2` kept: `{made_for, writes}`.
#[derive(NifTuple)]
struct Kept<'a>(Term<'a>, Writes);

impl<'a> Decoder<'a> for CgroupWrites {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let Kept(_made_for, Writes(controllers, settings)) = term.decode()?;
        Ok(CgroupWrites {
            controllers,
            settings,
        })
    }
}

/// `:base_env`: `{:latin1, packed}`, the BEAM's environment packed
/// (`crate::env_block`), or `[{name, value}]` binaries.
impl<'a> Decoder<'a> for EnvBlock {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let block = match term.decode::<(Atom, Binary)>() {
            Ok((tag, packed)) if tag == atoms::latin1() => EnvBlock::from_latin1(packed.as_slice()),
            Ok(_) => None,
            Err(_) => {
                let pairs: Vec<(Binary, Binary)> = term.decode()?;
                EnvBlock::from_pairs(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
            }
        };
        block.ok_or(Error::BadArg)
    }
}

/// A daemon's `:listen_sockets`, `[{name, socket}]`: the names.
impl<'a> Decoder<'a> for Names {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let entries: Vec<(String, Term<'a>)> = term.decode()?;
        Ok(Names(entries.into_iter().map(|(name, _)| name).collect()))
    }
}

/// `:ready`: `:notify`, or a pattern on the output (no socket).
impl<'a> Decoder<'a> for Notify {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        Ok(Notify(term.decode::<Atom>().ok() == Some(atoms::notify())))
    }
}
