//! A daemon's interface files kept open between `statistics/1` and
//! `cgroup_config/1` calls, and re-read in place.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

use muontrap_cgroup::layout::Hierarchy;

use crate::cgroup_fs::Resolved;

/// A daemon's statistics and knob files, opened once and re-read in place.
///
/// cgroupfs files are generated on every read from offset 0, so an open
/// file can be read again with `pread` at 0. Opening and closing one (a
/// path walk, a kernfs open and release) costs several times what reading
/// an open one does, and `statistics/1` reads a dozen files (figures in
/// docs/performance.md, "cgroup reads"); `cgroup_config/1` reads through
/// it too. A file is found again by its hierarchy and name, so a
/// hit builds no path, and one buffer serves every read.
/// Missing files are remembered as missing.
/// Once the group is removed, reads fail (ENODEV) and entries are omitted.
#[derive(Default)]
pub struct OpenFiles {
    inner: Mutex<Cache>,
}

crate::object::kind!(OpenFiles);

#[derive(Default)]
struct Cache {
    /// The group the files belong to: a call about another group (never
    /// made by `MuonTrap.Daemon`) starts the cache over.
    group: Option<Resolved>,
    files: Vec<Cached>,
    buf: Vec<u8>,
}

struct Cached {
    mount: PathBuf,
    name: Box<str>,
    file: Option<File>,
}

impl OpenFiles {
    /// Interface file `file` of `group` in hierarchy `h` as text, opened on
    /// first use.
    pub fn read_text(&self, group: &Resolved, h: &Hierarchy, file: &str) -> Option<String> {
        // A panic while holding the lock cannot leave the cache inconsistent.
        let mut cache = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Cache {
            group: cached_group,
            files,
            buf,
        } = &mut *cache;
        if cached_group.as_ref() != Some(group) {
            *cached_group = Some(group.clone());
            files.clear();
        }
        let found = files
            .iter()
            .position(|c| &*c.name == file && c.mount == h.mount_point);
        let index = match found {
            Some(i) => i,
            None => {
                let path = group.dir_in(h)?.join(file);
                files.push(Cached {
                    mount: h.mount_point.clone(),
                    name: file.into(),
                    file: File::open(path).ok(),
                });
                files.len() - 1
            }
        };
        let len = read_from_start(files[index].file.as_ref()?, buf)?;
        std::str::from_utf8(&buf[..len]).ok().map(str::to_owned)
    }
}

/// Reads the whole of `file` from offset 0 into `buf` (grown as needed),
/// without moving the file's position; returns the length.
fn read_from_start(file: &File, buf: &mut Vec<u8>) -> Option<usize> {
    if buf.is_empty() {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let room = buf.len() - len;
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => return Some(len),
            // cgroupfs regenerates a file for every read that does not
            // continue the previous one, so asking again at the end costs
            // a second generation. Its interface files are single records
            // that come whole in one read when they fit: a short read is
            // the end.
            Ok(n) if n < room => return Some(len + n),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup_fs::{resolve, Group, Root};

    fn g(path: &[u8]) -> Option<Group<'_>> {
        Some(Group {
            path,
            beneath_own_cgroup: false,
        })
    }

    #[test]
    fn open_files_reread_from_the_start_and_remember_missing_ones() {
        let mount = std::env::temp_dir().join(format!("muontrap_nif_open_{}", std::process::id()));
        let dir = mount.join("g");
        std::fs::create_dir_all(&dir).unwrap();
        let h = Hierarchy {
            mount_point: mount.clone(),
            version: 2,
            controllers: vec![],
            own: None,
        };
        let group = resolve(g(b"g"), Root::Deny).unwrap();
        let big: String = "x".repeat(10_000);
        std::fs::write(dir.join("stat"), "a 1\n").unwrap();
        std::fs::write(dir.join("big"), &big).unwrap();
        let files = OpenFiles::default();
        assert_eq!(
            files.read_text(&group, &h, "stat").as_deref(),
            Some("a 1\n")
        );
        // Same inode rewritten in place, as cgroupfs regenerates content.
        std::fs::write(dir.join("stat"), "a 22\n").unwrap();
        assert_eq!(
            files.read_text(&group, &h, "stat").as_deref(),
            Some("a 22\n")
        );
        // Longer than one read buffer, then shorter again.
        assert_eq!(files.read_text(&group, &h, "big"), Some(big));
        assert_eq!(
            files.read_text(&group, &h, "stat").as_deref(),
            Some("a 22\n")
        );
        assert_eq!(files.read_text(&group, &h, "missing"), None);
        std::fs::write(dir.join("missing"), "late").unwrap();
        assert_eq!(
            files.read_text(&group, &h, "missing"),
            None,
            "remembered as missing"
        );
        // Another group starts over.
        std::fs::create_dir_all(mount.join("other")).unwrap();
        std::fs::write(mount.join("other/stat"), "b 3\n").unwrap();
        let other = resolve(g(b"other"), Root::Deny).unwrap();
        assert_eq!(
            files.read_text(&other, &h, "stat").as_deref(),
            Some("b 3\n")
        );
        std::fs::remove_dir_all(&mount).unwrap();
    }
}
