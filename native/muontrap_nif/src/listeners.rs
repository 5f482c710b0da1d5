//! A daemon's listening sockets for socket activation (`listen_sockets:`):
//! the daemon's own duplicates of sockets the BEAM opened, held for as long
//! as the daemon lives, so every command it relaunches gets the same
//! listeners (as fds 3, 4, …, role LISTEN in the hand-over) whether or not
//! their owner still has them open.
//!
//! A descriptor number read from a socket (`:inet.getfd/1`) is a name, not
//! a capability: `MuonTrap.Daemon.Listeners` checks after `listeners_take`
//! that each socket is still open with the same number, so the duplicate
//! taken here is of that socket and not of whatever reused its number.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use rustler::{Atom, Encoder, Env, NifResult, Term};

use crate::errno;
use crate::object::Object;

mod atoms {
    rustler::atoms! { not_listening }
}

/// The daemon's duplicates, in the order of the `listen_sockets:` option.
pub struct Listeners {
    pub fds: Vec<OwnedFd>,
}

crate::object::kind!(Listeners);

/// A close-on-exec duplicate of `fd`, numbered 3 or above so it never
/// lands on a standard descriptor.
pub fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads `fd`; a bad one is EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Whether `fd` is a socket in the listening state (`SO_ACCEPTCONN`).
fn listening(fd: &OwnedFd) -> io::Result<bool> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_ACCEPTCONN fills one c_int of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if r < 0 {
        let err = io::Error::last_os_error();
        // Not a socket at all: as much not a listener as a connected one.
        return if err.raw_os_error() == Some(libc::ENOTSOCK) {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(value != 0)
}

/// Duplicates each of `fds` after checking it is a listening socket.
pub fn take(fds: &[RawFd]) -> Result<Vec<OwnedFd>, (usize, io::Error)> {
    fds.iter()
        .enumerate()
        .map(|(i, &fd)| {
            let dup = dup(fd).map_err(|e| (i, e))?;
            match listening(&dup) {
                Ok(true) => Ok(dup),
                Ok(false) => Err((i, io::Error::from_raw_os_error(libc::ENOTCONN))),
                Err(e) => Err((i, e)),
            }
        })
        .collect()
}

fn refused<'a>(env: Env<'a>, i: usize, e: &io::Error) -> NifResult<Term<'a>> {
    let reason = if e.raw_os_error() == Some(libc::ENOTCONN) {
        atoms::not_listening()
    } else {
        Atom::from_str(env, errno::atom_name(e))?
    };
    Ok((rustler::types::atom::error(), (i, reason)).encode(env))
}

/// `listeners_take(fds) :: {:ok, listeners} | {:error, {index, reason}}`:
/// the daemon's duplicates of the listening sockets numbered `fds`;
/// `reason` is `:not_listening` or a POSIX atom (`:ebadf` for a closed one).
#[rustler::nif]
pub fn listeners_take(env: Env, fds: Vec<i32>) -> NifResult<Term> {
    match take(&fds) {
        Ok(fds) => {
            let res = Object::new(Listeners { fds });
            Ok((rustler::types::atom::ok(), res).encode(env))
        }
        Err((i, e)) => refused(env, i, &e),
    }
}

/// `listeners_check(fds) :: :ok | {:error, {index, reason}}`: whether
/// `listeners_take` would succeed, keeping nothing (the process that starts
/// a daemon checks, so that it gets the error).
#[rustler::nif]
pub fn listeners_check(env: Env, fds: Vec<i32>) -> NifResult<Term> {
    match take(&fds) {
        Ok(_dropped) => Ok(rustler::types::atom::ok().encode(env)),
        Err((i, e)) => refused(env, i, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    #[test]
    fn takes_listeners_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = take(&[listener.as_raw_fd()]).unwrap();
        assert_eq!(taken.len(), 1);
        assert!(taken[0].as_raw_fd() >= 3);
        assert_ne!(taken[0].as_raw_fd(), listener.as_raw_fd());

        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (i, e) = take(&[listener.as_raw_fd(), stream.as_raw_fd()]).unwrap_err();
        assert_eq!((i, e.raw_os_error()), (1, Some(libc::ENOTCONN)));
        let (i, _) = take(&[udp.as_raw_fd()]).unwrap_err();
        assert_eq!(i, 0);
        let (i, e) = take(&[listener.as_raw_fd(), 1_000_000]).unwrap_err();
        assert_eq!((i, e.raw_os_error()), (1, Some(libc::EBADF)));
    }

    #[test]
    fn a_closed_number_is_ebadf() {
        // A number far above any other test thread's descriptors: one just
        // closed could be reused by a concurrent test before `take` runs.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY (test): a duplicate of our own listener, closed at once.
        let high = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 900) };
        assert!(high >= 900);
        // SAFETY (test): `high` is ours and nothing else uses it.
        unsafe { libc::close(high) };
        let (_, e) = take(&[high]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn the_duplicate_is_the_same_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let taken = take(&[listener.as_raw_fd()]).unwrap();
        drop(listener);
        let _client = TcpStream::connect(addr).unwrap();
        // SAFETY (test): accept on the duplicate, which is still listening.
        let conn = unsafe {
            libc::accept4(
                taken[0].as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        assert!(conn >= 0);
        unsafe { libc::close(conn) };
    }
}
