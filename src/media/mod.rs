//! Media relay control, sans-IO: which RTP ports a call holds, and the commands the
//! driver's relay executes. The relay itself (sockets, forwarding) lives in
//! `driver::media`; this module decides nothing about packets.

use std::collections::VecDeque;
use std::net::SocketAddr;

/// Identifies one relayed session (one call's media).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What the relay must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaCommand {
    /// Open a session: RTP arriving on `a_port` goes to the B side's peer and RTP arriving
    /// on `b_port` to the A side's; RTCP likewise on the ports above them.
    Open {
        /// Session.
        id: SessionId,
        /// Port the A party (caller) sends to.
        a_port: u16,
        /// Port the B party (callee) sends to.
        b_port: u16,
        /// Where the A party wants RTP, from its SDP (until latched).
        a_remote: Option<SocketAddr>,
    },
    /// The B party's SDP arrived: where it wants RTP (until latched).
    SetRemoteB {
        /// Session.
        id: SessionId,
        /// Address from the SDP.
        addr: SocketAddr,
    },
    /// Close the session and free its sockets.
    Close {
        /// Session.
        id: SessionId,
    },
    /// Echo: send everything the A party sends straight back to it (test number 600).
    Echo {
        /// Session.
        id: SessionId,
        /// Port the caller sends to.
        a_port: u16,
        /// Where the caller wants RTP, from its SDP.
        a_remote: Option<SocketAddr>,
    },
}

/// Even RTP ports of the configured range not in use by us; RTCP takes port + 1.
#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
}

impl PortPool {
    /// All even ports of `low..=high` whose odd partner is in range too.
    pub fn new(low: u16, high: u16) -> Self {
        let start = low + (low % 2);
        let free = (start..high).step_by(2).collect();
        Self { free }
    }

    /// Takes a port (least recently freed first, so a late packet for an ended call does
    /// not land in a new one).
    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    /// Returns a port.
    pub fn give(&mut self, port: u16) {
        self.free.push_back(port);
    }

    /// Ports left.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_even_ports_and_reuses_last() {
        let mut p = PortPool::new(20001, 20008);
        assert_eq!(p.available(), 3);
        let a = p.take().unwrap();
        assert_eq!(a, 20002);
        p.give(a);
        assert_eq!(p.take(), Some(20004));
        assert_eq!(p.take(), Some(20006));
        assert_eq!(p.take(), Some(20002));
        assert_eq!(p.take(), None);
    }
}
