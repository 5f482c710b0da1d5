//! Socket activation: what the program's environment says about the
//! LISTEN descriptors it gets as fds 3, 4, ..., read as sd_listen_fds(3)
//! reads it. The descriptors themselves are placed by the child
//! (`spawn/listen_fds.rs`).

use crate::spawn::EnvChanges;

/// Ours when the program gets LISTEN descriptors, and never inherited: the
/// port's own values (the BEAM may have been socket-activated itself)
/// describe descriptors the program does not have.
const VARS: [&str; 3] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// `count` LISTEN descriptors, named by `names` (`--listen-fdnames`, as
/// many as `count`: checked at the hand-over). `LISTEN_PID` is the
/// program's own pid, filled in by the child.
pub fn env_changes(count: usize, names: Option<&[String]>, changes: &mut EnvChanges) {
    changes.remove.extend(VARS);
    if count == 0 {
        return;
    }
    changes.set.push(("LISTEN_FDS", count.to_string()));
    if let Some(names) = names {
        changes.set.push(("LISTEN_FDNAMES", names.join(":")));
    }
    changes.pids.push("LISTEN_PID");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_descriptors_only_removes() {
        let mut c = EnvChanges::default();
        env_changes(0, None, &mut c);
        assert_eq!(c.remove, VARS);
        assert!(c.set.is_empty() && c.pids.is_empty());
    }

    #[test]
    fn with_descriptors_sets_all_three() {
        let mut c = EnvChanges::default();
        let names = ["http".to_string(), "https".to_string()];
        env_changes(2, Some(&names), &mut c);
        assert_eq!(
            c.set,
            [
                ("LISTEN_FDS", "2".to_string()),
                ("LISTEN_FDNAMES", "http:https".to_string())
            ]
        );
        assert_eq!(c.pids, ["LISTEN_PID"]);
        let mut c = EnvChanges::default();
        env_changes(1, None, &mut c);
        assert_eq!(c.set, [("LISTEN_FDS", "1".to_string())]);
        assert_eq!(c.remove, VARS, "an inherited LISTEN_FDNAMES goes too");
    }
}
