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

    /// The `RLIMIT_*` number.
    pub fn raw(self) -> libc::c_int {
        let r = match self {
            Resource::As => libc::RLIMIT_AS,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::Fsize => libc::RLIMIT_FSIZE,
            Resource::Locks => libc::RLIMIT_LOCKS,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Resource::Nice => libc::RLIMIT_NICE,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Rss => libc::RLIMIT_RSS,
            Resource::Rtprio => libc::RLIMIT_RTPRIO,
            Resource::Rttime => libc::RLIMIT_RTTIME,
            Resource::Sigpending => libc::RLIMIT_SIGPENDING,
            Resource::Stack => libc::RLIMIT_STACK,
        };
        // glibc types these as `__rlimit_resource_t` (unsigned), musl as
        // `c_int`; all are small.
        r as libc::c_int
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
        }
        assert_eq!(Resource::by_name("NOFILE"), None);
        assert_eq!(Resource::Nofile.raw(), libc::RLIMIT_NOFILE as libc::c_int);
    }
}
