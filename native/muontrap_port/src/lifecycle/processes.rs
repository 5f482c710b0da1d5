//! What the lifecycle knows of the processes: the program, whether any
//! child (the program or a descendant) is left, and when to look again.

use nix::unistd::Pid;

use crate::tree::{self, Reaper};

pub(super) struct Processes {
    reaper: Reaper,
    program: Pid,
    /// SIGCHLD seen since the last reap (waitpid is not free at 16-byte
    /// windows, so it is not run on every iteration).
    need_reap: bool,
    any_left: bool,
}

impl Processes {
    pub(super) fn new(program: Pid) -> Processes {
        Processes {
            reaper: Reaper::new(program),
            program,
            need_reap: true,
            any_left: true,
        }
    }

    pub(super) fn child_exited(&mut self) {
        self.need_reap = true;
    }

    /// Reaps after a SIGCHLD, or every time with `always` (while
    /// terminating, when exits we were not told of matter).
    pub(super) fn reap(&mut self, always: bool) {
        if self.need_reap || always {
            self.need_reap = false;
            self.any_left = self.reaper.reap();
        }
    }

    /// Any child, alive or unreaped, as of the last reap; without a
    /// subreaper (macOS, the `portable` build) also any process left in
    /// the program's group, which is not our child.
    pub(super) fn any_left(&self) -> bool {
        self.any_left || self.group_left()
    }

    /// The program is reaped but its process group lives on: no
    /// subreaper makes its members our children.
    fn group_left(&self) -> bool {
        cfg!(not(linux_native)) && !self.program_running() && tree::group_exists(self.program)
    }

    /// The program's status, once it is reaped.
    pub(super) fn program_status(&self) -> Option<i32> {
        self.reaper.status
    }

    pub(super) fn program_running(&self) -> bool {
        self.reaper.status.is_none()
    }

    /// The program's process group, to signal: only while the program is
    /// unreaped (see `tree::signal_tree`), or, without a subreaper, while
    /// the group has members (its id cannot be reused meanwhile).
    pub(super) fn process_group(&self) -> Option<Pid> {
        (self.program_running() || self.group_left()).then_some(self.program)
    }
}
