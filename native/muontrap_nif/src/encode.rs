//! Converting parsed cgroup values into the Erlang terms documented for
//! `MuonTrap.Daemon.cgroup_config/1` and `statistics/1`.

use muontrap_cgroup::knobs::KnobValue;
use muontrap_cgroup::parse::{Psi, PsiLine};
use muontrap_cgroup::stats::StatValue;
use rustler::{Encoder, Env, NifResult, Term};

use crate::atoms;

pub fn knob_value<'a>(env: Env<'a>, value: &KnobValue) -> Term<'a> {
    match value {
        KnobValue::Int(v) => v.encode(env),
        KnobValue::Max => atoms::max().encode(env),
        KnobValue::CpuQuota { quota, period } => (*quota, *period).encode(env),
        KnobValue::Bool(b) => b.encode(env),
        KnobValue::Str(s) => s.encode(env),
    }
}

pub fn stat_value<'a>(env: Env<'a>, value: &StatValue) -> NifResult<Term<'a>> {
    match value {
        StatValue::Int(v) => Ok(v.encode(env)),
        StatValue::Flat(pairs) => {
            // map_put rather than map_from_pairs: a duplicated key (never
            // expected from the kernel) must not fail the whole call.
            let mut map = Term::map_new(env);
            for (key, v) in pairs {
                map = map.map_put(key.as_str(), *v)?;
            }
            Ok(map)
        }
        StatValue::Pressure(psi) => pressure(env, psi),
    }
}

fn pressure<'a>(env: Env<'a>, psi: &Psi) -> NifResult<Term<'a>> {
    let mut map = Term::map_new(env);
    for (key, line) in [("some", &psi.some), ("full", &psi.full)] {
        if let Some(line) = line {
            map = map.map_put(key, psi_line(env, line)?)?;
        }
    }
    Ok(map)
}

fn psi_line<'a>(env: Env<'a>, line: &PsiLine) -> NifResult<Term<'a>> {
    // Parser guarantees finite averages, which Erlang floats require.
    Term::map_new(env)
        .map_put("avg10", line.avg10)?
        .map_put("avg60", line.avg60)?
        .map_put("avg300", line.avg300)?
        .map_put("total", line.total)
}
