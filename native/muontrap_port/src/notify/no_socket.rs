//! No notification socket without Linux (macOS, FreeBSD, the `portable`
//! build): `ready: :notify` and `:watchdog` are refused when options are
//! validated (`MuonTrap.Options`, from the NIF's `platform/0`), and the
//! plain command line's `--notify` gets this error.

use std::os::fd::OwnedFd;

use nix::errno::Errno;

pub const MAX_DATAGRAM: usize = 4096;

pub fn control_buffer() -> Vec<u8> {
    Vec::new()
}

pub fn create() -> Result<(OwnedFd, String), String> {
    Err(format!(
        "--notify and --watchdog need Linux (sd_notify), not {}",
        std::env::consts::OS
    ))
}

#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Datagram { len: usize, pid: i32 },
    TooLong,
    Empty,
}

pub fn recv(_sock: &OwnedFd, _body: &mut [u8], _control: &mut Vec<u8>) -> Result<Received, Errno> {
    Ok(Received::Empty)
}
