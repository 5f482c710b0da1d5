//! Parsing `/proc/self/mountinfo`, from which `layout` finds the cgroup
//! hierarchies: hybrid hosts mount cgroup2 somewhere under `/sys/fs/cgroup`
//! (often `/sys/fs/cgroup/unified`) next to the v1 controllers, so no mount
//! point can be hard coded.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of `/proc/<pid>/mountinfo` (see proc(5)); only the fields the
/// cgroup code needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Root of the mount within the filesystem (field 4), escapes decoded.
    pub root: PathBuf,
    /// Mount point relative to the process root (field 5), escapes decoded.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `cgroup2`.
    pub fs_type: String,
    /// Per-superblock options, e.g. `rw,nsdelegate`.
    pub super_options: String,
}

/// Parses mountinfo text. Malformed lines are skipped rather than failing
/// the whole parse, since one odd mount shouldn't hide the cgroup2 one.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // Single spaces, as the kernel writes them: it escapes only space, tab,
    // newline and backslash in a path, so splitting on any other
    // whitespace (a vertical tab, U+00A0...) would read one field of a
    // path someone chose as several, and such a path can spell out fields
    // of its own (`x\u{a0}-\u{a0}cgroup2...`: a FUSE mount posing as a
    // cgroup hierarchy).
    let fields: Vec<&str> = line.split(' ').collect();
    // Fields 1-6 are fixed, then zero or more optional fields end with "-",
    // then fstype, source (unused) and super options.
    if fields.len() < 10 {
        return None;
    }
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fs_type = *fields.get(sep + 1)?;
    // A line without its source field is cut short: skip it.
    fields.get(sep + 2)?;
    // Super options are normally present; tolerate their absence.
    let super_options = fields.get(sep + 3).copied().unwrap_or("");
    Some(MountEntry {
        root: PathBuf::from(OsString::from_vec(unescape(fields[3]))),
        mount_point: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
        fs_type: fs_type.to_string(),
        super_options: super_options.to_string(),
    })
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline and
/// backslash are escaped this way). Anything that isn't a valid 3-digit
/// escape is kept literally.
fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(b) = bytes.get(i + 1..i + 4).and_then(octal_byte) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    let mut value: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value * 8 + u32::from(d - b'0');
    }
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Debian host with v1 controllers plus cgroup2 at .../unified.
    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// systemd pure-v2 host; includes optional fields before the separator.
    const PURE_V2: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn parses_hybrid_host() {
        let entries = parse_mountinfo(HYBRID);
        assert_eq!(entries.len(), 8);
        let last = entries.last().unwrap();
        assert_eq!(last.mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(last.fs_type, "cgroup2");
        assert_eq!(last.super_options, "rw");
        assert_eq!(entries[4].super_options, "rw,cpu");
    }

    #[test]
    fn parses_pure_v2_host_with_optional_fields() {
        let entries = parse_mountinfo(PURE_V2);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].fs_type, "cgroup2");
        assert_eq!(
            entries[2].super_options,
            "rw,nsdelegate,memory_recursiveprot"
        );
        assert_eq!(entries[2].mount_point, Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn decodes_octal_escapes() {
        let text = "1 1 0:1 /a\\134b /mnt/tab\\011x\\012y\\040z rw - tmpfs my\\040src rw\n";
        let e = &parse_mountinfo(text)[0];
        assert_eq!(e.root, Path::new("/a\\b"));
        assert_eq!(e.mount_point, Path::new("/mnt/tab\tx\ny z"));
        assert_eq!(e.super_options, "rw");
    }

    #[test]
    fn keeps_invalid_escapes_literally() {
        assert_eq!(unescape("a\\9xx"), b"a\\9xx");
        assert_eq!(unescape("end\\04"), b"end\\04");
        assert_eq!(unescape("big\\777"), b"big\\777");
        assert_eq!(unescape("\\"), b"\\");
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "\
garbage
1 2 3 4 5 6 7 8 9 10
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2
42 31 0:38 / /x rw - cgroup2 cgroup2 rw
43 31 0:38 / /y rw a b - cgroup2
";
        let entries = parse_mountinfo(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].mount_point, Path::new("/x"));
    }

    /// Found by the mountinfo round trip in tests/props_layout.rs.
    #[test]
    fn whitespace_the_kernel_leaves_unescaped_stays_in_its_field() {
        let text = "50 27 0:50 / /home/u/x\u{a0}a\u{a0}b\u{a0}-\u{a0}cgroup2\u{a0}none\u{a0}rw \
                    rw,nosuid - fuse.sshfs u@h:/ rw\n\
                    51 27 0:51 /\u{b} /m\u{c}n rw - ext4 /dev/x rw\n";
        let e = parse_mountinfo(text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].fs_type, "fuse.sshfs");
        assert_eq!(
            e[0].mount_point,
            Path::new("/home/u/x\u{a0}a\u{a0}b\u{a0}-\u{a0}cgroup2\u{a0}none\u{a0}rw")
        );
        assert_eq!(e[1].root, Path::new("/\u{b}"));
        assert_eq!(e[1].mount_point, Path::new("/m\u{c}n"));
    }

    #[test]
    fn truncated_input_never_panics() {
        for end in 0..=HYBRID.len() {
            if HYBRID.is_char_boundary(end) {
                let _ = parse_mountinfo(&HYBRID[..end]);
            }
        }
    }
}
