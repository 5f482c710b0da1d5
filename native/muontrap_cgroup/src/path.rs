//! Validation of caller-supplied cgroup paths and interface file names.
//!
//! These strings come from Elixir code and get joined onto the cgroup2
//! mount point, so anything that could step outside the hierarchy
//! (`..`, absolute paths, embedded NULs) must be rejected before any
//! filesystem access.

use std::fmt;

/// Why a cgroup path or file name was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The string is empty.
    Empty,
    /// The path starts with `/`; cgroup paths are relative to the mount.
    Absolute,
    /// A `.` or `..` component, which could alias or escape the cgroup.
    DotComponent,
    /// Two `/` in a row or a trailing `/`.
    EmptyComponent,
    /// A NUL byte, which the OS would silently truncate at.
    Nul,
    /// A `/` inside something that must be a single file name.
    Separator,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            PathError::Empty => "path is empty",
            PathError::Absolute => "cgroup path must be relative, not start with '/'",
            PathError::DotComponent => "path must not contain '.' or '..' components",
            PathError::EmptyComponent => {
                "path must not contain empty components ('//' or trailing '/')"
            }
            PathError::Nul => "path must not contain NUL bytes",
            PathError::Separator => "file name must not contain '/'",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for PathError {}

/// Checks a cgroup path relative to the cgroup2 mount, e.g. `muontrap/a1b2`.
pub fn validate_cgroup_path(p: &str) -> Result<(), PathError> {
    if p.is_empty() {
        return Err(PathError::Empty);
    }
    if p.contains('\0') {
        return Err(PathError::Nul);
    }
    if p.starts_with('/') {
        return Err(PathError::Absolute);
    }
    p.split('/').try_for_each(check_component)
}

/// Checks a single interface file name such as `memory.max`.
pub fn validate_file_name(name: &str) -> Result<(), PathError> {
    if name.contains('\0') {
        return Err(PathError::Nul);
    }
    if name.contains('/') {
        return Err(PathError::Separator);
    }
    check_component(name)
}

fn check_component(c: &str) -> Result<(), PathError> {
    match c {
        "" => Err(PathError::EmptyComponent),
        "." | ".." => Err(PathError::DotComponent),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_relative_paths() {
        for p in [
            "muontrap",
            "muontrap/a1b2c3",
            "a/b/c",
            "...",
            "a/.hidden",
            "x..y",
        ] {
            assert_eq!(validate_cgroup_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        let cases = [
            ("", PathError::Empty),
            ("/sys/fs/cgroup", PathError::Absolute),
            ("/", PathError::Absolute),
            ("..", PathError::DotComponent),
            (".", PathError::DotComponent),
            ("a/../b", PathError::DotComponent),
            ("a/..", PathError::DotComponent),
            ("./a", PathError::DotComponent),
            ("a//b", PathError::EmptyComponent),
            ("a/", PathError::EmptyComponent),
            ("a\0b", PathError::Nul),
            ("/\0", PathError::Nul),
        ];
        for (p, want) in cases {
            assert_eq!(validate_cgroup_path(p), Err(want), "{p:?}");
        }
    }

    #[test]
    fn accepts_file_names() {
        for n in ["memory.max", "cgroup.procs", "cpu.stat", "..."] {
            assert_eq!(validate_file_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn rejects_bad_file_names() {
        let cases = [
            ("", PathError::EmptyComponent),
            (".", PathError::DotComponent),
            ("..", PathError::DotComponent),
            ("a/b", PathError::Separator),
            ("../../etc/passwd", PathError::Separator),
            ("/etc/passwd", PathError::Separator),
            ("x\0", PathError::Nul),
        ];
        for (n, want) in cases {
            assert_eq!(validate_file_name(n), Err(want), "{n:?}");
        }
    }

    #[test]
    fn errors_have_messages() {
        let e: Box<dyn std::error::Error> = Box::new(PathError::Absolute);
        assert!(e.to_string().contains("relative"));
        assert_eq!(PathError::Empty.to_string(), "path is empty");
    }
}
