//! cgroup (v2 and v1) helpers shared by the MuonTrap port binary and the NIF.
//!
//! Everything here is std-only (and libc's kill(2)) and, apart from
//! [`layout::Layout::detect`] and [`teardown`], pure so it can be unit
//! tested without a real cgroup hierarchy.

pub mod knobs;
pub mod layout;
pub mod mount;
pub mod parents;
pub mod parse;
pub mod path;
pub mod settings;
pub mod stats;
pub mod teardown;
pub mod v1;
