//! Defaults and bounds of the port binary that the Elixir library relies
//! on, read through the NIF (`MuonTrap.Nif.constants/0`).

/// `--delay-to-sigkill`'s default (the C original's), and
/// `:delay_to_sigkill`'s.
pub const DELAY_TO_SIGKILL_MS: u32 = 500;

/// The smallest `--stdio-window`, and `:stdio_window`'s: a valid option
/// is a valid flag.
pub const MIN_WINDOW: u32 = 16;
