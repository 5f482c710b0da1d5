//! cgroup v2 helpers shared by the MuonTrap port binary and the NIF.
//!
//! Everything here is std-only and, apart from [`mount::cgroup2_mount`],
//! pure so it can be unit tested without a real cgroup hierarchy.

pub mod knobs;
pub mod mount;
pub mod parse;
pub mod path;
pub mod stats;
