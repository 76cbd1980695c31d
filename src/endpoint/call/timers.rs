//! A call's timers firing: 2xx retransmission, ring timeout, key timeout, position
//! announcements and a callback customer's ring.

use std::cmp::Reverse;
use std::time::Instant;

use super::super::Endpoint;
use super::state::{CallId, CallTimer, LegId, Role, Status};
use crate::cdr::{Disposition, HangupBy};
use crate::sip::transaction::Transmit;

impl Endpoint {
    /// Our 2xx on `leg` is due again (timer `kind`): sent, or after 64 T1 with no ACK the
    /// party is taken for gone and the call ends (RFC 3261 §13.3.1.4).
    fn retransmit_ok(&mut self, now: Instant, id: CallId, kind: CallTimer, leg: LegId) {
        let Some(l) = self.calls.legs.get_mut(leg) else {
            return;
        };
        let Some(ok) = l.ok.as_mut() else {
            return;
        };
        let Some(next) = ok.again(now, self.cfg_t2) else {
            l.ok = None;
            self.bye_caller(now, id);
            self.bye_callee(now, id);
            self.finish(now, id, Disposition::Answered, 408, HangupBy::System);
            return;
        };
        let bytes = ok.bytes.clone();
        let peer = l.dialog.peer.clone();
        self.out.push_back(Transmit { peer, bytes });
        self.calls.arm(id, kind, next);
    }

    /// Call timers due at `now`.
    pub(in crate::endpoint) fn call_timeouts(&mut self, now: Instant) {
        if self.calls.sweep_at.is_some_and(|at| at <= now) {
            self.refresh_sweep(now);
        }
        while let Some(Reverse((at, id, kind))) = self.calls.due.peek().copied() {
            if at > now {
                break;
            }
            self.calls.due.pop();
            let Some(c) = self.calls.calls.get_mut(&id) else {
                continue;
            };
            if c.timers.get(kind) != Some(at) {
                continue; // stopped or set again since
            }
            c.timers.stop(kind);
            match kind {
                CallTimer::OkRetransmit | CallTimer::CalleeOkRetransmit => {
                    let role = if kind == CallTimer::OkRetransmit {
                        Role::Caller
                    } else {
                        Role::Callee
                    };
                    if let Some(leg) = c.leg(role) {
                        self.retransmit_ok(now, id, kind, leg);
                    }
                }
                CallTimer::CustomerRing => {
                    let ringing = c.callback.as_ref().is_some_and(|cb| cb.ringing.is_some());
                    if ringing {
                        self.customer_failed(now, id, 480);
                    }
                }
                CallTimer::ParkTimeout => self.park_timeout(now, id),
                CallTimer::Reliable => self.reliable_due(now, id),
                CallTimer::FeatureEntry => self.feature_timeout(now, id),
                CallTimer::Announce => {
                    self.queue_announce(now, id);
                }
                CallTimer::DigitTimeout => {
                    self.end_collect(now, id);
                }
                CallTimer::RingTimeout => {
                    if !c.dialing.is_empty() {
                        tracing::info!(call = %id, "no answer");
                        self.detach_b(now, id);
                        self.unbridge(id);
                        self.dial_failed(now, id, Status::NoAnswer);
                        self.run_dialplan(now, id);
                    }
                }
            }
        }
    }
}
