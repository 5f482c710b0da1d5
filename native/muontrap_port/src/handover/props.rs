//! Property tests of the hand-over message (docs/reliability.md,
//! "Fuzzing"): the BEAM's role bytes and descriptors, sorted into roles or
//! refused with every descriptor closed, and the socket name check.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// A descriptor stand-in that records being dropped (closed).
#[derive(Debug, PartialEq, Eq)]
struct Token {
    n: usize,
    dropped: Rc<RefCell<Vec<usize>>>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.dropped.borrow_mut().push(self.n);
    }
}

/// Role bytes, mostly the known ones; counts around `MAX_FDS`.
fn roles() -> impl Strategy<Value = Vec<u8>> {
    let role = prop_oneof![
        4 => prop::sample::select(&[ROLE_OUTPUT, ROLE_STDIN, ROLE_STDERR, ROLE_LISTEN][..]),
        1 => any::<u8>(),
    ];
    prop_oneof![vec(role.clone(), 0..6), vec(role, 0..=MAX_FDS + 2)]
}

proptest! {
    /// Any message: either each descriptor lands in the one slot its role
    /// byte names (LISTEN in order), or it is refused and every descriptor
    /// is closed. None is ever lost or kept twice.
    #[test]
    fn every_descriptor_is_placed_or_closed(roles in roles(), extra in -2i64..=2) {
        let dropped = Rc::new(RefCell::new(Vec::new()));
        let count = usize::try_from(roles.len() as i64 + extra).unwrap_or(0);
        let fds: Vec<Token> = (0..count).map(|n| Token { n, dropped: dropped.clone() }).collect();
        match sort(&roles, fds) {
            Err(_) => {
                let mut closed = dropped.borrow().clone();
                closed.sort_unstable();
                prop_assert_eq!(closed, (0..count).collect::<Vec<_>>());
            }
            Ok(h) => {
                prop_assert!(dropped.borrow().is_empty());
                prop_assert!(count <= MAX_MESSAGE_FDS && count == roles.len());
                let at = |role: u8| roles.iter().position(|&r| r == role);
                prop_assert_eq!(h.output.as_ref().map(|t| t.n), at(ROLE_OUTPUT));
                prop_assert_eq!(h.stdin.as_ref().map(|t| t.n), at(ROLE_STDIN));
                prop_assert_eq!(h.stderr.as_ref().map(|t| t.n), at(ROLE_STDERR));
                let listen: Vec<usize> = (0..count).filter(|&i| roles[i] == ROLE_LISTEN).collect();
                prop_assert_eq!(h.listen.iter().map(|t| t.n).collect::<Vec<_>>(), listen);
            }
        }
    }
}
