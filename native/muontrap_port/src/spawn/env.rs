//! The program's environment when the port changes it (`--setenv`,
//! `--unsetenv`, `NOTIFY_SOCKET`, `WATCHDOG_*`, `LISTEN_*`): an `envp`
//! array prepared before the clone.
//! `WATCHDOG_PID` and `LISTEN_PID` are the program's own pid, known only in
//! the child: each is a fixed-size slot that the child fills in place
//! (`fill_pid`), allocating nothing.

use std::cell::Cell;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use muontrap_command::env_block::{entry_name, EnvBlock};

use super::PlanError;

/// Up to 10 digits (a u32) and the NUL, after `NAME=`.
const PID_ROOM: usize = 10 + 1;

/// What the port changes in the environment it was started with.
#[derive(Debug, Default)]
pub struct EnvChanges {
    /// The caller's `--setenv` (`Some`) and `--unsetenv` (`None`), in
    /// order, as raw bytes; applied before the port's own changes, which win.
    pub caller: Vec<(OsString, Option<OsString>)>,
    /// Set, replacing an inherited value.
    pub set: Vec<(&'static str, String)>,
    /// Dropped from the inherited environment.
    pub remove: Vec<&'static str>,
    /// Set to the program's pid by the child (replacing an inherited value).
    pub pids: Vec<&'static str>,
    /// The inherited environment is not the port's own (the BEAM's,
    /// handed over), so it must be passed even when nothing changes it.
    pub replace_inherited: bool,
}

/// `NAME=` and room for a pid. Cells: the child writes it through the
/// shared `Plan` (the parent is suspended meanwhile).
struct PidSlot {
    /// Where the digits start (after `NAME=`).
    at: usize,
    cells: Box<[Cell<u8>]>,
}

impl PidSlot {
    fn new(name: &str) -> PidSlot {
        let mut bytes = format!("{name}=").into_bytes();
        let at = bytes.len();
        bytes.resize(at + PID_ROOM, 0);
        PidSlot {
            at,
            cells: bytes.into_iter().map(Cell::new).collect(),
        }
    }
}

pub struct Env {
    /// The inherited entries kept, each followed by its NUL.
    _base: Vec<u8>,
    _vars: Vec<CString>,
    slots: Vec<PidSlot>,
    /// Null-terminated; points into `_base`, `_vars` and `slots`.
    ptrs: Vec<*const libc::c_char>,
}

/// `NAME=VALUE`, bytes as they are. The environment cannot hold a NUL
/// (nor can argv, where --setenv values come from); skip rather than fail.
fn push_var(vars: &mut Vec<CString>, k: &OsString, v: &OsString) {
    let mut kv = k.as_bytes().to_vec();
    kv.push(b'=');
    kv.extend_from_slice(v.as_bytes());
    if let Ok(c) = CString::new(kv) {
        vars.push(c);
    }
}

/// `n` in decimal at the end of `buf`; returns where it starts.
pub(super) fn decimal(mut n: u32, buf: &mut [u8; 10]) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

impl Env {
    /// `inherited` without any variable `changes` names, then
    /// `changes.set`, then the pid slots. `None` when that is just
    /// `inherited` (the program can inherit the port's environment).
    /// The kept entries are copied as one block, not one by one.
    pub fn new(inherited: &EnvBlock, changes: &EnvChanges) -> Result<Option<Env>, PlanError> {
        let ours = |name: &[u8]| {
            let named = |k: &&str| k.as_bytes() == name;
            changes.set.iter().any(|(k, _)| named(k))
                || changes.remove.iter().any(named)
                || changes.pids.iter().any(named)
        };
        let theirs = |name: &[u8]| changes.caller.iter().any(|(k, _)| k.as_bytes() == name);
        let mut changed = changes.replace_inherited
            || !changes.set.is_empty()
            || !changes.pids.is_empty()
            || !changes.caller.is_empty();
        let mut base = Vec::with_capacity(inherited.as_bytes().len());
        let mut starts = Vec::new();
        for entry in inherited.entries() {
            let name = entry_name(entry);
            if ours(name) || theirs(name) {
                changed = true;
                continue;
            }
            starts.push(base.len());
            base.extend_from_slice(entry);
            base.push(0);
        }
        if !changed {
            return Ok(None);
        }
        let mut vars = Vec::new();
        // The last --setenv or --unsetenv of a name decides.
        for (i, (k, v)) in changes.caller.iter().enumerate() {
            let later = changes.caller[i + 1..].iter().any(|(l, _)| l == k);
            if let (Some(v), false, false) = (v, later, ours(k.as_bytes())) {
                push_var(&mut vars, k, v);
            }
        }
        for (k, v) in &changes.set {
            let c = CString::new(format!("{k}={v}"))
                .map_err(|_| PlanError(format!("environment variable {k} contains a NUL byte")))?;
            vars.push(c);
        }
        let slots: Vec<PidSlot> = changes.pids.iter().map(|n| PidSlot::new(n)).collect();
        // `base` is complete: its buffer no longer moves.
        let mut ptrs: Vec<*const libc::c_char> = starts
            .iter()
            .map(|&i| base[i..].as_ptr().cast::<libc::c_char>())
            .collect();
        ptrs.extend(vars.iter().map(|c| c.as_ptr()));
        ptrs.extend(
            slots
                .iter()
                .map(|s| s.cells.as_ptr().cast::<libc::c_char>()),
        );
        ptrs.push(std::ptr::null());
        Ok(Some(Env {
            _base: base,
            _vars: vars,
            slots,
            ptrs,
        }))
    }

    /// In the child: writes `pid` into every slot. Stack and in-place
    /// writes only.
    pub(super) fn fill_pid(&self, pid: u32) {
        let mut digits = [0u8; 10];
        let start = decimal(pid, &mut digits);
        let digits = &digits[start..];
        for slot in &self.slots {
            let cells = slot.cells.get(slot.at..).unwrap_or_default();
            // PID_ROOM holds 10 digits and the NUL: the zip never cuts.
            for (cell, &d) in cells.iter().zip(digits.iter().chain(&[0])) {
                cell.set(d);
            }
        }
    }

    /// The `envp` for execvpe.
    pub(super) fn envp(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn strings(e: &Env) -> Vec<String> {
        e.ptrs
            .iter()
            .take_while(|p| !p.is_null())
            // SAFETY: every non-null entry points to a NUL-terminated
            // string owned by `e` (test only).
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect()
    }

    fn inherited(pairs: &[(&str, &str)]) -> EnvBlock {
        EnvBlock::from_pairs(pairs.iter().copied()).expect("good names")
    }

    fn changes(
        set: &[(&'static str, &str)],
        remove: &[&'static str],
        pids: &[&'static str],
    ) -> EnvChanges {
        EnvChanges {
            caller: Vec::new(),
            set: set.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            remove: remove.to_vec(),
            pids: pids.to_vec(),
            replace_inherited: false,
        }
    }

    #[test]
    fn a_replaced_environment_is_passed_even_unchanged() {
        let mut c = changes(&[], &[], &[]);
        assert!(Env::new(&inherited(&[("A", "1")]), &c).unwrap().is_none());
        c.replace_inherited = true;
        assert!(Env::new(&inherited(&[("A", "1")]), &c).unwrap().is_some());
    }

    #[test]
    fn replaces_instead_of_duplicating() {
        let env = Env::new(
            &inherited(&[
                ("PATH", "/bin"),
                ("NOTIFY_SOCKET", "/run/systemd/notify"),
                ("WATCHDOG_PID", "1"),
                ("WATCHDOG_USEC", "5"),
                ("HOME", "/root"),
            ]),
            &changes(
                &[
                    ("NOTIFY_SOCKET", "@muontrap-notify-1-ab"),
                    ("WATCHDOG_USEC", "300000"),
                ],
                &[],
                &["WATCHDOG_PID"],
            ),
        )
        .unwrap()
        .unwrap();
        env.fill_pid(4_294_967_295);
        assert_eq!(
            strings(&env),
            vec![
                "PATH=/bin",
                "HOME=/root",
                "NOTIFY_SOCKET=@muontrap-notify-1-ab",
                "WATCHDOG_USEC=300000",
                "WATCHDOG_PID=4294967295",
            ]
        );
        // Filled again (a shorter pid): still one terminated string.
        env.fill_pid(42);
        assert_eq!(
            strings(&env).last().map(String::as_str),
            Some("WATCHDOG_PID=42")
        );
        env.fill_pid(0);
        assert_eq!(
            strings(&env).last().map(String::as_str),
            Some("WATCHDOG_PID=0")
        );
    }

    #[test]
    fn every_pid_slot_is_filled() {
        let env = Env::new(
            &inherited(&[("LISTEN_PID", "1"), ("A", "b")]),
            &changes(&[("LISTEN_FDS", "2")], &[], &["WATCHDOG_PID", "LISTEN_PID"]),
        )
        .unwrap()
        .unwrap();
        env.fill_pid(123);
        assert_eq!(
            strings(&env),
            vec!["A=b", "LISTEN_FDS=2", "WATCHDOG_PID=123", "LISTEN_PID=123"]
        );
        env.fill_pid(u32::MAX);
        assert_eq!(
            strings(&env)[2..],
            ["WATCHDOG_PID=4294967295", "LISTEN_PID=4294967295"]
        );
    }

    #[test]
    fn removes_and_works_without_a_slot() {
        let env = Env::new(
            &inherited(&[("WATCHDOG_PID", "1"), ("WATCHDOG_USEC", "5"), ("A", "b=c")]),
            &changes(
                &[("NOTIFY_SOCKET", "@x")],
                &["WATCHDOG_USEC", "WATCHDOG_PID"],
                &[],
            ),
        )
        .unwrap()
        .unwrap();
        env.fill_pid(7);
        assert_eq!(strings(&env), vec!["A=b=c", "NOTIFY_SOCKET=@x"]);
        let nul = changes(&[("X", "a\0b")], &[], &[]);
        assert!(Env::new(&EnvBlock::default(), &nul).is_err());
        // Only removals: an environment only if one was there.
        let only = inherited(&[("LISTEN_FDS", "3"), ("A", "b")]);
        let env = Env::new(&only, &changes(&[], &["LISTEN_FDS"], &[])).unwrap();
        assert_eq!(env.as_ref().map(strings), Some(vec!["A=b".to_string()]));
    }

    #[test]
    fn nothing_changed_means_no_environment_of_our_own() {
        let env = inherited(&[("A", "b"), ("LISTEN_FDSX", "1")]);
        let none = changes(&[], &["LISTEN_FDS", "LISTEN_PID"], &[]);
        assert!(Env::new(&env, &none).unwrap().is_none());
        assert!(Env::new(&EnvBlock::default(), &EnvChanges::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_callers_edits_go_first_and_the_last_one_decides() {
        use std::os::unix::ffi::OsStringExt;
        let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
        let mut c = changes(&[("LISTEN_FDS", "1")], &[], &[]);
        c.caller = vec![
            (raw(b"BIN"), Some(raw(b"\xff\xfe=\n"))),
            (raw(b"HOME"), None),
            (raw(b"TWICE"), Some(raw(b"first"))),
            (raw(b"TWICE"), Some(raw(b"second"))),
            (raw(b"GONE"), Some(raw(b"x"))),
            (raw(b"GONE"), None),
            (raw(b"LISTEN_FDS"), Some(raw(b"9"))),
        ];
        let env = Env::new(&inherited(&[("HOME", "/root"), ("A", "b")]), &c)
            .unwrap()
            .unwrap();
        let bytes: Vec<Vec<u8>> = env
            .ptrs
            .iter()
            .take_while(|p| !p.is_null())
            // SAFETY: NUL-terminated strings owned by `env` (test only).
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
            .collect();
        let expected: [&[u8]; 4] = [b"A=b", b"BIN=\xff\xfe=\n", b"TWICE=second", b"LISTEN_FDS=1"];
        assert_eq!(bytes, expected);
        // Only an --unsetenv: an environment of our own all the same.
        let c = EnvChanges {
            caller: vec![(raw(b"HOME"), None)],
            ..EnvChanges::default()
        };
        let env = Env::new(&inherited(&[("HOME", "/root")]), &c).unwrap();
        assert_eq!(env.as_ref().map(strings), Some(vec![]));
    }

    #[test]
    fn decimals() {
        let mut b = [0u8; 10];
        let i = decimal(0, &mut b);
        assert_eq!(&b[i..], b"0");
        let i = decimal(1234567, &mut b);
        assert_eq!(&b[i..], b"1234567");
        let i = decimal(u32::MAX, &mut b);
        assert_eq!(&b[i..], b"4294967295");
    }
}
