//! Turning `io::Error`s into the lowercase POSIX atoms Elixir's `File`
//! functions use (`:enoent`, `:eacces`, ...), so `cgget/cgset` errors look
//! like `File.posix()` values.

use std::io;

/// The atom name for an errno value, if it's one we know.
pub fn name(errno: i32) -> Option<&'static str> {
    // Matched against libc constants rather than numbers because errno
    // values differ between architectures.
    let name = match errno {
        libc::EPERM => "eperm",
        libc::ENOENT => "enoent",
        libc::ESRCH => "esrch",
        libc::EINTR => "eintr",
        libc::EIO => "eio",
        libc::ENXIO => "enxio",
        libc::E2BIG => "e2big",
        libc::EBADF => "ebadf",
        libc::EAGAIN => "eagain",
        libc::ENOMEM => "enomem",
        libc::EACCES => "eacces",
        libc::EFAULT => "efault",
        libc::EBUSY => "ebusy",
        libc::EEXIST => "eexist",
        libc::EXDEV => "exdev",
        libc::ENODEV => "enodev",
        libc::ENOTDIR => "enotdir",
        libc::EISDIR => "eisdir",
        libc::EINVAL => "einval",
        libc::ENFILE => "enfile",
        libc::EMFILE => "emfile",
        libc::EFBIG => "efbig",
        libc::ENOSPC => "enospc",
        libc::ESPIPE => "espipe",
        libc::EROFS => "erofs",
        libc::EPIPE => "epipe",
        libc::ERANGE => "erange",
        libc::EDEADLK => "edeadlk",
        libc::ENAMETOOLONG => "enametoolong",
        libc::ENOSYS => "enosys",
        libc::ENOTEMPTY => "enotempty",
        libc::ELOOP => "eloop",
        libc::EOVERFLOW => "eoverflow",
        libc::EOPNOTSUPP => "eopnotsupp",
        _ => return None,
    };
    Some(name)
}

/// The atom name for an I/O error. Errors without an errno (e.g. the
/// "no cgroup2 mount" error) fall back on their kind, then `eio`.
pub fn atom_name(err: &io::Error) -> &'static str {
    if let Some(name) = err.raw_os_error().and_then(name) {
        return name;
    }
    match err.kind() {
        io::ErrorKind::NotFound => "enoent",
        io::ErrorKind::PermissionDenied => "eacces",
        io::ErrorKind::InvalidInput => "einval",
        io::ErrorKind::OutOfMemory => "enomem",
        _ => "eio",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_os_errors() {
        let cases = [
            (libc::ENOENT, "enoent"),
            (libc::EACCES, "eacces"),
            (libc::EPERM, "eperm"),
            (libc::EINVAL, "einval"),
            (libc::EBUSY, "ebusy"),
            (libc::EOPNOTSUPP, "eopnotsupp"),
        ];
        for (errno, want) in cases {
            assert_eq!(atom_name(&io::Error::from_raw_os_error(errno)), want);
        }
    }

    #[test]
    fn unknown_errno_falls_back_to_eio() {
        assert_eq!(atom_name(&io::Error::from_raw_os_error(100_000)), "eio");
    }

    #[test]
    fn errors_without_errno_use_kind() {
        let err = io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount");
        assert_eq!(atom_name(&err), "enoent");
        assert_eq!(atom_name(&io::Error::other("x")), "eio");
    }
}
