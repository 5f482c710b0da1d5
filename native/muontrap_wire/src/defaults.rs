//! Defaults of the port binary that the Elixir library relies on: it
//! passes the flag only when the option is given, so its own default must
//! be this one (`MuonTrap.PortBinary.default_delay_to_sigkill/0` reads it
//! through the NIF).

/// `--delay-to-sigkill`'s default (the C original's), and
/// `:delay_to_sigkill`'s.
pub const DELAY_TO_SIGKILL_MS: u32 = 500;
