//! Queue statistics, updated on every event. Definitions (documented in the README):
//! - service level = answered within the threshold ÷ (answered + abandoned after the
//!   short-abandon window);
//! - ASA (average speed of answer) = mean wait of answered calls;
//! - AHT (average handle time) = (talk + wrap-up) per handled call.

use std::time::Duration;

/// One queue's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    /// Callers who came to the queue (joined or turned away).
    pub offered: u64,
    /// Connected to an agent.
    pub answered: u64,
    /// Answered within the service-level threshold.
    pub answered_in_sl: u64,
    /// Hung up while waiting.
    pub abandoned: u64,
    /// Of those, within the short-abandon window.
    pub short_abandoned: u64,
    /// Given up by the queue (full, no agents, waited too long).
    pub overflowed: u64,
    /// Total wait of answered callers.
    pub answered_wait: Duration,
    /// Calls whose talk has ended.
    pub handled: u64,
    /// Their talk and wrap-up.
    pub handle_time: Duration,
    /// Of the handled calls, those the agent transferred elsewhere (its talk ended at
    /// the transfer).
    #[serde(default)]
    pub transferred: u64,
}

impl QueueStats {
    pub(super) fn answered(&mut self, waited: Duration, threshold: Duration) {
        self.answered += 1;
        self.answered_wait += waited;
        if waited <= threshold {
            self.answered_in_sl += 1;
        }
    }

    pub(super) fn abandoned(&mut self, waited: Duration, short: Duration) {
        self.abandoned += 1;
        if waited < short {
            self.short_abandoned += 1;
        }
    }

    pub(super) fn handled(&mut self, talk: Duration, wrap_up: Duration) {
        self.handled += 1;
        self.handle_time += talk + wrap_up;
    }

    /// Service level, 0..1 (`None` before any call counts).
    pub fn service_level(&self) -> Option<f64> {
        let n = self.answered + self.abandoned - self.short_abandoned;
        (n > 0).then(|| self.answered_in_sl as f64 / n as f64)
    }

    /// Average speed of answer.
    pub fn asa(&self) -> Option<Duration> {
        (self.answered > 0).then(|| self.answered_wait / self.answered as u32)
    }

    /// Average handle time.
    pub fn aht(&self) -> Option<Duration> {
        (self.handled > 0).then(|| self.handle_time / self.handled as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_give_sl_asa_and_aht_at_their_edges() {
        let s = Duration::from_secs(1);
        let mut st = QueueStats::default();
        assert_eq!((st.service_level(), st.asa(), st.aht()), (None, None, None));
        // The threshold itself is within it; a short abandon is strictly shorter.
        st.answered(s * 20, s * 20);
        st.answered(s * 4, s * 20);
        st.answered(s * 21, s * 20);
        st.abandoned(s * 5, s * 5);
        st.abandoned(s * 4, s * 5);
        assert_eq!((st.answered_in_sl, st.short_abandoned), (2, 1));
        // Two in time of three answered and one long abandon (the short one left out).
        assert_eq!(st.service_level(), Some(0.5));
        assert_eq!(st.asa(), Some(s * 15));
        st.handled(s * 100, s * 10);
        st.handled(s * 50, Duration::ZERO);
        assert_eq!(st.aht(), Some(s * 80));
        // Only short abandons: nothing to judge the service level by.
        let mut st = QueueStats::default();
        st.abandoned(s, s * 5);
        assert_eq!(st.service_level(), None);
        let mut st = QueueStats::default();
        st.answered(s * 30, s * 20);
        assert_eq!(st.service_level(), Some(0.0));
        assert_eq!(st.asa(), Some(s * 30));
    }
}
