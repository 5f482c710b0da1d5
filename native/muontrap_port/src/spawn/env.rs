//! The program's environment when the port sets variables of its own
//! (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`): an `envp` array
//! prepared before the clone. `WATCHDOG_PID` is the program's own pid,
//! known only in the child: its string is a fixed-size slot that the
//! child fills in place (`fill_pid`), allocating nothing.

use std::cell::Cell;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use super::PlanError;

const PID_VAR: &[u8] = b"WATCHDOG_PID=";
/// The name, up to 10 digits (a u32) and the NUL.
const SLOT_LEN: usize = PID_VAR.len() + 10 + 1;

pub struct Env {
    _vars: Vec<CString>,
    /// `WATCHDOG_PID=` and room for the pid. Cells: the child writes it
    /// through the shared `Plan` (the parent is suspended meanwhile).
    slot: Option<Box<[Cell<u8>; SLOT_LEN]>>,
    /// Null-terminated; points into `_vars` and `slot`.
    ptrs: Vec<*const libc::c_char>,
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
    /// `inherited` (the port's environment) without any variable named in
    /// `set` or `remove`, then `set`, then the `WATCHDOG_PID` slot if
    /// `pid_slot` (which replaces an inherited one too).
    pub fn new(
        inherited: impl IntoIterator<Item = (OsString, OsString)>,
        set: &[(&str, String)],
        remove: &[&str],
        pid_slot: bool,
    ) -> Result<Env, PlanError> {
        let pid_name = &PID_VAR[..PID_VAR.len() - 1];
        let dropped = |name: &[u8]| {
            set.iter().any(|(k, _)| k.as_bytes() == name)
                || remove.iter().any(|k| k.as_bytes() == name)
                || (pid_slot && name == pid_name)
        };
        let mut vars = Vec::new();
        for (k, v) in inherited {
            if dropped(k.as_bytes()) {
                continue;
            }
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            // The environment cannot hold a NUL; skip rather than fail.
            if let Ok(c) = CString::new(kv) {
                vars.push(c);
            }
        }
        for (k, v) in set {
            let c = CString::new(format!("{k}={v}"))
                .map_err(|_| PlanError(format!("environment variable {k} contains a NUL byte")))?;
            vars.push(c);
        }
        let slot = pid_slot.then(|| {
            let s: Box<[Cell<u8>; SLOT_LEN]> = Box::new(std::array::from_fn(|_| Cell::new(0)));
            for (cell, &b) in s.iter().zip(PID_VAR) {
                cell.set(b);
            }
            s
        });
        let mut ptrs: Vec<*const libc::c_char> = vars.iter().map(|c| c.as_ptr()).collect();
        if let Some(s) = &slot {
            ptrs.push(s.as_ptr().cast());
        }
        ptrs.push(std::ptr::null());
        Ok(Env {
            _vars: vars,
            slot,
            ptrs,
        })
    }

    /// In the child: writes `pid` into the slot. Stack and in-place writes
    /// only.
    pub(super) fn fill_pid(&self, pid: u32) {
        let Some(slot) = &self.slot else { return };
        let mut digits = [0u8; 10];
        let start = decimal(pid, &mut digits);
        let cells = &slot[PID_VAR.len()..];
        for (cell, &d) in cells.iter().zip(&digits[start..]) {
            cell.set(d);
        }
        // 10 digits at most: the NUL always fits.
        cells[digits.len() - start].set(0);
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

    fn inherited(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn replaces_instead_of_duplicating() {
        let env = Env::new(
            inherited(&[
                ("PATH", "/bin"),
                ("NOTIFY_SOCKET", "/run/systemd/notify"),
                ("WATCHDOG_PID", "1"),
                ("WATCHDOG_USEC", "5"),
                ("HOME", "/root"),
            ]),
            &[
                ("NOTIFY_SOCKET", "@muontrap-notify-1-ab".into()),
                ("WATCHDOG_USEC", "300000".into()),
            ],
            &[],
            true,
        )
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
    fn removes_and_works_without_a_slot() {
        let env = Env::new(
            inherited(&[("WATCHDOG_PID", "1"), ("WATCHDOG_USEC", "5"), ("A", "b=c")]),
            &[("NOTIFY_SOCKET", "@x".into())],
            &["WATCHDOG_USEC", "WATCHDOG_PID"],
            false,
        )
        .unwrap();
        env.fill_pid(7);
        assert_eq!(strings(&env), vec!["A=b=c", "NOTIFY_SOCKET=@x"]);
        assert!(Env::new(Vec::new(), &[("X", "a\0b".into())], &[], false).is_err());
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
