//! `setrlimit(2)` resources by the names `--rlimit` and `:rlimits` use:
//! `RLIMIT_*` in lower case without the prefix.

/// `RLIM_INFINITY` as `prlimit64(2)` takes it.
pub const INFINITY: u64 = u64::MAX;

/// A `setrlimit(2)` resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

/// Every resource by its name, in alphabetical order.
pub const RESOURCES: [(&str, Resource); 16] = [
    ("as", Resource::As),
    ("core", Resource::Core),
    ("cpu", Resource::Cpu),
    ("data", Resource::Data),
    ("fsize", Resource::Fsize),
    ("locks", Resource::Locks),
    ("memlock", Resource::Memlock),
    ("msgqueue", Resource::Msgqueue),
    ("nice", Resource::Nice),
    ("nofile", Resource::Nofile),
    ("nproc", Resource::Nproc),
    ("rss", Resource::Rss),
    ("rtprio", Resource::Rtprio),
    ("rttime", Resource::Rttime),
    ("sigpending", Resource::Sigpending),
    ("stack", Resource::Stack),
];

impl Resource {
    pub fn by_name(name: &str) -> Option<Resource> {
        RESOURCES.iter().find(|(n, _)| *n == name).map(|&(_, r)| r)
    }

    pub fn name(self) -> &'static str {
        RESOURCES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("?", |(n, _)| n)
    }

    /// The `RLIMIT_*` number; `None` where the platform has no such
    /// resource (macOS and FreeBSD lack `locks`, `msgqueue`, `nice`,
    /// `rtprio`, `rttime` and `sigpending`).
    pub fn raw(self) -> Option<libc::c_int> {
        let r = match self {
            Resource::As => libc::RLIMIT_AS,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::Fsize => libc::RLIMIT_FSIZE,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Rss => libc::RLIMIT_RSS,
            Resource::Stack => libc::RLIMIT_STACK,
            #[cfg(target_os = "linux")]
            Resource::Locks => libc::RLIMIT_LOCKS,
            #[cfg(target_os = "linux")]
            Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
            #[cfg(target_os = "linux")]
            Resource::Nice => libc::RLIMIT_NICE,
            #[cfg(target_os = "linux")]
            Resource::Rtprio => libc::RLIMIT_RTPRIO,
            #[cfg(target_os = "linux")]
            Resource::Rttime => libc::RLIMIT_RTTIME,
            #[cfg(target_os = "linux")]
            Resource::Sigpending => libc::RLIMIT_SIGPENDING,
            #[cfg(not(target_os = "linux"))]
            Resource::Locks
            | Resource::Msgqueue
            | Resource::Nice
            | Resource::Rtprio
            | Resource::Rttime
            | Resource::Sigpending => return None,
        };
        // glibc types these as `__rlimit_resource_t` (unsigned), musl and
        // the BSDs as `c_int`; all are small.
        #[allow(clippy::unnecessary_cast)]
        Some(r as libc::c_int)
    }

    /// Whether this platform has the resource.
    pub fn available(self) -> bool {
        self.raw().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_sorted_and_numbers_differ() {
        for (i, (name, r)) in RESOURCES.iter().enumerate() {
            assert_eq!(Resource::by_name(name), Some(*r));
            assert_eq!(r.name(), *name);
            assert!(RESOURCES[i + 1..]
                .iter()
                .all(|(n, o)| n > name && o.raw() != r.raw()));
            #[cfg(target_os = "linux")]
            assert!(r.available(), "{name}");
        }
        assert_eq!(Resource::by_name("NOFILE"), None);
        assert_eq!(
            Resource::Nofile.raw(),
            Some(libc::RLIMIT_NOFILE as libc::c_int)
        );
    }
}
