//! Transaction timer settings (RFC 3261 §17, Table 4).

use std::time::Duration;

/// T1, T2 and T4. Every other timer derives from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; Timer A/E/G start here and B/F/H/J are 64*T1.
    pub t1: Duration,
    /// Cap on non-INVITE request and INVITE response retransmission intervals.
    pub t2: Duration,
    /// Maximum time a message stays in the network; Timers I and K.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}
