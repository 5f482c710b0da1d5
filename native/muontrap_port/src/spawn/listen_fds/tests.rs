//! The placement on a model of the fd table that behaves as the kernel's
//! does for these calls (dup2 onto itself keeps FD_CLOEXEC).

use std::collections::BTreeMap;

use super::*;

/// fd -> (open file description, FD_CLOEXEC).
#[derive(Default, Debug)]
struct Model(BTreeMap<RawFd, (u32, bool)>);

impl Model {
    fn desc(&self, fd: RawFd) -> Result<u32, i32> {
        self.0.get(&fd).map(|&(d, _)| d).ok_or(libc::EBADF)
    }

    /// What survives exec.
    fn after_exec(&self) -> BTreeMap<RawFd, u32> {
        let kept = self.0.iter().filter(|(_, &(_, cloexec))| !cloexec);
        kept.map(|(&fd, &(d, _))| (fd, d)).collect()
    }
}

impl FdTable for Model {
    fn dup_from(&mut self, fd: RawFd, min: RawFd) -> Result<RawFd, i32> {
        let d = self.desc(fd)?;
        let free = (min..)
            .find(|n| !self.0.contains_key(n))
            .ok_or(libc::EMFILE)?;
        self.0.insert(free, (d, true));
        Ok(free)
    }

    fn dup_onto(&mut self, from: RawFd, to: RawFd) -> Result<(), i32> {
        let d = self.desc(from)?;
        if from != to {
            self.0.insert(to, (d, false));
        }
        Ok(())
    }

    fn clear_cloexec(&mut self, fd: RawFd) -> Result<(), i32> {
        let entry = self.0.get_mut(&fd).ok_or(libc::EBADF)?;
        entry.1 = false;
        Ok(())
    }
}

/// Every ordered choice of `n` distinct fds from `pool`.
fn arrangements(pool: &[RawFd], n: usize) -> Vec<Vec<RawFd>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for (i, &fd) in pool.iter().enumerate() {
        let mut rest = pool.to_vec();
        rest.remove(i);
        for mut tail in arrangements(&rest, n - 1) {
            tail.insert(0, fd);
            all.push(tail);
        }
    }
    all
}

/// Sources at `fds` (description 100 + i), everything else from 3 to 10
/// open as well (the port's other descriptors, also close-on-exec), stdio
/// inheritable.
fn model(fds: &[RawFd]) -> Model {
    let mut m = Model::default();
    for fd in 0..=2 {
        m.0.insert(fd, (fd as u32, false));
    }
    for fd in 3..=10 {
        m.0.insert(fd, (50 + fd as u32, true));
    }
    for (i, &fd) in fds.iter().enumerate() {
        m.0.insert(fd, (100 + i as u32, true));
    }
    m
}

#[test]
fn every_layout_ends_on_3_up_and_inheritable() {
    for n in 0..=4 {
        for fds in arrangements(&[3, 4, 5, 6, 7, 9, 12], n) {
            let mut m = model(&fds);
            place(&mut m, &fds).unwrap_or_else(|e| panic!("{fds:?}: errno {e}"));
            let mut want: BTreeMap<RawFd, u32> = (0..=2).map(|fd| (fd, fd as u32)).collect();
            for i in 0..n {
                want.insert(3 + i as RawFd, 100 + i as u32);
            }
            assert_eq!(m.after_exec(), want, "sources {fds:?}");
        }
    }
}

#[test]
fn a_source_on_its_own_target_only_loses_cloexec() {
    let fds = [3, 4, 8];
    let mut m = model(&fds);
    place(&mut m, &fds).unwrap();
    assert_eq!(m.0.get(&3), Some(&(100, false)));
    assert_eq!(m.0.get(&4), Some(&(101, false)));
    assert_eq!(m.0.get(&5), Some(&(102, false)));
    // Nothing was copied above for them.
    assert!(m.0.keys().all(|&fd| fd <= 10));
}

#[test]
fn a_source_among_the_targets_is_not_clobbered() {
    // fd 4 must go to 3 and fd 3 to 4: a plain dup2 in order would replace
    // fd 4 before it is moved.
    let fds = [4, 3];
    let mut m = model(&fds);
    place(&mut m, &fds).unwrap();
    assert_eq!(m.0.get(&3), Some(&(100, false)));
    assert_eq!(m.0.get(&4), Some(&(101, false)));
}

#[test]
fn errors_and_limits() {
    let mut m = model(&[]);
    assert_eq!(place(&mut m, &[42]), Err(libc::EBADF));
    let too_many: Vec<RawFd> = (100..100 + MAX_FDS as RawFd + 1).collect();
    assert_eq!(place(&mut m, &too_many), Err(libc::EINVAL));
    assert_eq!(end(0), 3);
    assert_eq!(end(2), 5);
    assert_eq!(end(MAX_FDS), 35);
    // All of the limit, from far above.
    let fds: Vec<RawFd> = (40..40 + MAX_FDS as RawFd).collect();
    let mut m = model(&fds);
    place(&mut m, &fds).unwrap();
    let inherited: Vec<RawFd> = m.after_exec().into_keys().collect();
    assert_eq!(inherited, (0..35).collect::<Vec<_>>());
}
