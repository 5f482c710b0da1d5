//! The `:cgroup` option as `MuonTrap.Cgroup` validates and translates it:
//! the Erlang terms in and out of `muontrap_cgroup::settings`, the one
//! table of the knobs (see its docs for why the table lives in Rust).
//!
//! Both run on a normal scheduler: they touch no file, and a map holds at
//! most the table's dozen settings.

use muontrap_cgroup::knobs::{KnobValue, KNOBS};
use muontrap_cgroup::settings::{self, SettingError};
use rustler::types::tuple;
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

use crate::atoms;

/// A value of the shape of some knob's value, or `None`: `max`,
/// `true`/`false`, a non-negative integer (up to 2⁶⁴ - 1), `{quota,
/// period}` or a UTF-8 string. Which knob takes it is for the table.
fn knob_value(term: Term<'_>) -> Option<KnobValue> {
    if let Ok(n) = term.decode::<u64>() {
        return Some(KnobValue::Int(n));
    }
    if let Ok(name) = term.atom_to_string() {
        return match name.as_str() {
            "max" => Some(KnobValue::Max),
            "true" => Some(KnobValue::Bool(true)),
            "false" => Some(KnobValue::Bool(false)),
            _ => None,
        };
    }
    if let Ok([quota, period]) = tuple::get_tuple(term).as_deref() {
        return Some(KnobValue::CpuQuota {
            quota: quota.decode().ok()?,
            period: period.decode().ok()?,
        });
    }
    let text = term.decode::<Binary>().ok()?;
    std::str::from_utf8(text.as_slice())
        .ok()
        .map(|s| KnobValue::Str(s.to_string()))
}

/// `cgroup_writes([{key, value}], v1_controllers) ::
/// {:ok, {controllers, [{file, value}]}} | {:error, reason}`, the
/// settings sorted by the caller; `reason` is `{:unknown_key, key}`,
/// `{:bad_value, key, value, expected}`, `{:no_v1_equivalent, key,
/// controller}` or `:swap_needs_memory_max`, for the first one refused.
#[rustler::nif]
fn cgroup_writes<'a>(
    env: Env<'a>,
    entries: Vec<(Term<'a>, Term<'a>)>,
    v1_controllers: Vec<String>,
) -> NifResult<Term<'a>> {
    let keys: Vec<Option<String>> = entries
        .iter()
        .map(|(key, _)| key.atom_to_string().ok())
        .collect();
    let settings: Vec<settings::Setting> = keys
        .iter()
        .zip(&entries)
        .map(|(key, (_, value))| (key.as_deref(), knob_value(*value)))
        .collect();
    let v1: Vec<&str> = v1_controllers.iter().map(String::as_str).collect();
    let (index, error) = match settings::to_writes(&settings, &v1) {
        Ok(w) => return Ok((atoms::ok(), (w.controllers, w.files)).encode(env)),
        Err(refused) => refused,
    };
    let (key, value) = *entries.get(index).ok_or(rustler::Error::BadArg)?;
    let reason = match error {
        SettingError::UnknownKey => (atoms::unknown_key(), key).encode(env),
        SettingError::BadValue(expected) => (atoms::bad_value(), key, value, expected).encode(env),
        SettingError::NoV1Equivalent(controller) => {
            (atoms::no_v1_equivalent(), key, controller).encode(env)
        }
        SettingError::SwapNeedsMemoryMax => atoms::swap_needs_memory_max().encode(env),
    };
    Ok((atoms::error(), reason).encode(env))
}

/// `cgroup_keys(v1_only) :: [atom]`: every key of the `:cgroup` map, or
/// those with a cgroup v1 equivalent, in table order.
#[rustler::nif]
fn cgroup_keys(env: Env<'_>, v1_only: bool) -> NifResult<Vec<Atom>> {
    let keys = if v1_only {
        settings::v1_keys()
    } else {
        KNOBS.iter().map(|k| k.key).collect()
    };
    keys.into_iter().map(|k| Atom::from_str(env, k)).collect()
}
