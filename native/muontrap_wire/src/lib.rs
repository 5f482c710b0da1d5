//! The one home of every constant the MuonTrap port binary, the NIF and
//! (through the NIF) the Elixir library must agree on: frame tags and
//! bodies, hand-over roles, limits and socket names, signal and rlimit
//! names, and the port's defaults the library relies on. The port binary
//! and the NIF both depend on this crate, so nothing here is written twice
//! and kept in step by comments; Elixir asks the NIF (`MuonTrap.Nif`) and
//! never holds a number of its own. docs/protocol.md, "Where the constants
//! live", lists what is where.
//!
//! std and libc only, and pure: no I/O.

pub mod channel;
pub mod defaults;
pub mod frame;
pub mod handover;
pub mod rlimit;
pub mod signals;
