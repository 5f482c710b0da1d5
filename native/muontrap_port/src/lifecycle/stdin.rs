//! What arrives on stdin while the program runs: plain-mode acks for the
//! window, framed messages (TERMINATE, SIGNAL), and EOF (the Erlang side
//! is gone).

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::unistd::read;

use super::{Lifecycle, Phase};
use crate::notify::Notifier;
use crate::protocol::{Inbound, ProtocolError};

/// Our stdin, as far as it can still be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inbox {
    Open,
    /// After a framed decoding error: still read (for EOF), never parsed.
    Garbled,
    /// EOF: the Erlang side is gone.
    Closed,
}

impl Lifecycle {
    pub(super) fn protocol_error(&mut self, e: ProtocolError) {
        if self.error_status.is_none() {
            self.out.error(&e.to_string());
            self.error_status = Some(1);
        }
        self.pipe.discard();
        self.start_terminate("protocol error");
    }

    // Not inlined: its 4 KiB buffer is on the stack only while it runs
    // (each stack page a supervisor touches is a private copy of its own).
    #[inline(never)]
    pub(super) fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        let n = match read(std::io::stdin().as_fd(), &mut buf) {
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => return,
            Err(e) => {
                crate::log::warn!(error = %e, "reading stdin failed");
                0
            }
        };
        if n == 0 {
            self.inbox = Inbox::Closed;
            // Nobody will ack or read output any more.
            self.pipe.discard();
            self.start_terminate("stdin closed");
            return;
        }
        self.consume_stdin(&buf[..n]);
    }

    /// Plain: acks. Framed: messages.
    pub(super) fn consume_stdin(&mut self, bytes: &[u8]) {
        if self.inbox != Inbox::Open {
            return;
        }
        if !self.out.framed() {
            let acked = crate::protocol::plain_ack_total(bytes);
            if let Err(e) = self.pipe.ack(acked) {
                self.protocol_error(e);
            }
            return;
        }
        self.decoder.push(bytes);
        self.handle_messages();
    }

    fn handle_messages(&mut self) {
        loop {
            match self.decoder.next_message() {
                Ok(None) => break,
                Ok(Some(Inbound::Terminate)) => self.start_terminate("TERMINATE message"),
                Ok(Some(Inbound::Signal(sig))) => self.signal_request(sig),
                Err(e) => {
                    self.inbox = Inbox::Garbled;
                    self.protocol_error(e);
                    break;
                }
            }
        }
    }

    /// SIGNAL: one SIGNALED per request, right away, so in order. Only
    /// while the program runs: not once it exited or termination began.
    fn signal_request(&mut self, sig: u32) {
        let running = matches!(self.phase, Phase::Running) && self.processes.program_running();
        let main = self.notify.as_ref().and_then(Notifier::main_pidfd);
        let reply = self.target.signal(sig, main, running);
        crate::log::debug!(signal = sig, ?reply, "SIGNAL");
        self.out.signaled(reply);
    }
}
