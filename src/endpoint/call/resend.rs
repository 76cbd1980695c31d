//! A response sent again until the other side shows it has it: our 2xx to an INVITE
//! until its ACK (RFC 3261 §13.3.1.4), a reliable provisional until its PRACK (RFC 3262
//! §3). Holds the bytes and the schedule; sends nothing. Imports nothing of the call
//! layer, so the legs and the files that fill them may all use it.

use bytes::Bytes;
use std::time::{Duration, Instant};

/// Our 2xx to an INVITE, sent again until its ACK: after T1, then doubling up to T2, for
/// 64 T1 at most (RFC 3261 §13.3.1.4).
#[derive(Clone, Debug)]
pub(in crate::endpoint) struct Retransmit2xx {
    /// The response as sent.
    pub(in crate::endpoint) bytes: Bytes,
    /// The wait before the next copy.
    interval: Duration,
    /// No ACK by then: the party is gone.
    until: Instant,
}

impl Retransmit2xx {
    /// `bytes` just sent at `now`; the first copy is due at `now + t1`.
    pub(in crate::endpoint) fn new(bytes: Bytes, now: Instant, t1: Duration) -> Self {
        Self {
            bytes,
            interval: t1,
            until: now + t1 * 64,
        }
    }

    /// When the first copy is due after the 2xx went out at `now`.
    pub(in crate::endpoint) fn first(&self, now: Instant) -> Instant {
        now + self.interval
    }

    /// A copy goes out at `now`: when this is next asked, or `None` when 64 T1 have
    /// passed with no ACK (the caller of this gives the party up, and sends nothing). The
    /// last wait is cut short at 64 T1, so the party is given up then, not at the next
    /// copy's time after it.
    pub(in crate::endpoint) fn again(&mut self, now: Instant, t2: Duration) -> Option<Instant> {
        if now >= self.until {
            return None;
        }
        self.interval = (self.interval * 2).min(t2);
        Some((now + self.interval).min(self.until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2xx_is_sent_again_doubling_to_t2_for_64_t1() {
        let (t1, t2) = (Duration::from_millis(500), Duration::from_secs(4));
        let t0 = Instant::now();
        let mut r = Retransmit2xx::new(Bytes::from_static(b"x"), t0, t1);
        let mut at = r.first(t0);
        let mut asked = vec![at - t0];
        while let Some(next) = r.again(at, t2) {
            at = next;
            asked.push(at - t0);
        }
        let ms: Vec<u128> = asked.iter().map(Duration::as_millis).collect();
        // A copy at each time but the last, 64 T1, when the party is given up.
        assert_eq!(
            ms,
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500, 32000]
        );
    }
}
