//! The guards as the endpoint applies them: what a banned source is answered, a source
//! over its rate, failed credentials and wrong PINs counted, and `ctl bans`/`unban`. The
//! tables themselves are [`crate::guard`]'s; this only connects them to messages, the
//! counters and the log.

use std::time::Instant;

use super::Endpoint;
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::{response_to, Peer, Transmit};

impl Endpoint {
    /// Answers a request from a banned source 403, statelessly: no transaction is kept
    /// for it, and responses and ACKs get nothing.
    pub(super) fn forbid_banned(&mut self, msg: &Message, peer: Peer) {
        if msg.request_line().is_none_or(|rl| rl.method == Method::Ack) {
            return;
        }
        let tag = self.tag();
        let mut resp = response_to(msg, StatusCode::FORBIDDEN, Some(&tag));
        resp.push_header(HeaderName::Server, self.server_name.clone());
        self.out.push_back(Transmit {
            peer,
            bytes: resp.to_bytes(),
        });
    }

    /// Whether a request from `peer` now is beyond its source's rate (then dropped and
    /// counted).
    pub(super) fn over_rate(&mut self, now: Instant, peer: &Peer) -> bool {
        let ip = peer.addr.ip();
        if self.bans.is_exempt(ip) || self.rate.allow(now, ip) {
            return false;
        }
        self.stats.rate_limited += 1;
        if self.stats.rate_limited.is_power_of_two() {
            tracing::warn!(source = %ip, dropped = self.stats.rate_limited, "requests beyond a source's rate dropped");
        }
        true
    }

    /// A failed authentication from `ip`, which may ban it.
    pub(super) fn auth_failed(&mut self, now: Instant, ip: std::net::IpAddr) {
        if let Some(length) = self.bans.failed(now, ip) {
            self.stats.bans += 1;
            tracing::warn!(
                source = %ip,
                ban_s = length.as_secs(),
                "source banned after repeated authentication failures (ctl unban lifts it)"
            );
        }
    }

    /// A wrong PIN keyed by `source` (`ext:EXT`, or `trunk:NAME:NUMBER`), which may
    /// refuse it PINs for a while.
    pub(super) fn pin_failed(&mut self, now: Instant, source: &str) {
        if let Some(length) = self.pins.failed(now, source) {
            tracing::warn!(
                source,
                refused_s = length.as_secs(),
                "caller refused PINs after repeated wrong ones"
            );
        }
    }

    /// Sources banned now or failing authentication, for `ctl bans`.
    pub fn bans(&self, now: Instant) -> Vec<crate::guard::BanView> {
        self.bans.list(now)
    }

    /// Lifts the ban on `ip` (`ctl unban`); whether it was banned or watched.
    pub fn unban(&mut self, ip: std::net::IpAddr) -> bool {
        let lifted = self.bans.lift(ip);
        if lifted {
            tracing::info!(source = %ip, "ban lifted");
        }
        lifted
    }
}
