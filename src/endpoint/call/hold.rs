//! Hold and resume (RFC 3264 §8.4): which mid-call offer holds or resumes, what the
//! holder is answered, and the music the held party hears meanwhile instead of silence.
//!
//! The offer itself is relayed by `in_dialog`; this file decides what it means and tells
//! the relay. It owns the call's `on_hold` and nothing else.

use super::super::owner::CallTx;
use super::super::Endpoint;
use super::state::{CallId, HoldChange, LegId};
use crate::sdp::{Direction, Sdp};
use crate::story::{Event, Party};
use bytes::Bytes;

/// What an offer from leg `from` of a two-party call does, with `on_hold` the leg on
/// hold now (if any).
pub(super) fn hold_change<L: PartialEq>(offer: &Sdp, from: L, on_hold: Option<L>) -> HoldChange {
    match on_hold {
        // Both on hold at once is not a state a bridge has: a party on hold that holds
        // back is relayed as it is.
        Some(held) if held == from => HoldChange::None,
        _ if offer.holds() => HoldChange::Hold(offer.direction()),
        // The other party is held, and this offer does not hold: it resumes.
        Some(_) => HoldChange::Resume,
        None => HoldChange::None,
    }
}

/// The direction the holder is answered, for the one it offered: `inactive` stays
/// inactive, anything else (`sendonly`, or `0.0.0.0` in the older form) gets `recvonly`.
pub(super) fn held_answer(asked: Direction) -> Direction {
    match asked {
        Direction::Inactive => Direction::Inactive,
        _ => Direction::RecvOnly,
    }
}

impl Endpoint {
    /// A relayed offer from leg `from` of call `id` was accepted by the other party: the
    /// relay plays it music, or stops.
    pub(super) fn hold_changed(
        &mut self,
        now: std::time::Instant,
        id: CallId,
        from: LegId,
        change: HoldChange,
    ) {
        let music = match change {
            HoldChange::Hold(_) => Some(self.music_on_hold(id, from)),
            _ => None,
        };
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(held) = c.other(from) else {
            return;
        };
        let caller = c.is_caller(held);
        let who = if caller { Party::Caller } else { Party::Callee };
        let Some(leg) = self
            .calls
            .legs
            .get(held)
            .and_then(|l| l.media)
            .map(|m| m.key)
        else {
            return;
        };
        match change {
            HoldChange::None => {}
            HoldChange::Hold(_) => {
                c.on_hold = Some(held);
                let music = music.unwrap_or_default();
                let party = if caller { "caller" } else { "callee" };
                tracing::info!(call = %id, party, music = %music.display(), "on hold");
                self.calls.suspend(id, leg, music);
                self.tell(now, id, Event::Held { party: who });
            }
            HoldChange::Resume => {
                c.on_hold = None;
                tracing::info!(call = %id, "resumed");
                self.calls.unsuspend(id, leg);
                self.tell(now, id, Event::Resumed { party: who });
                self.conversation_on(id);
            }
        }
    }

    /// What the party `holder` puts on hold in call `id` hears: the queue's music when the
    /// call came through one, else the holder's extension's `moh`, else the `moh` of the
    /// trunk the call uses, else `moh/default`.
    pub(super) fn music_on_hold(&self, id: CallId, holder: LegId) -> std::path::PathBuf {
        let Some(c) = self.calls.calls.get(&id) else {
            return self.sounds_dir.join("moh/default.wav");
        };
        if let Some(q) = c.queue.as_ref().filter(|q| !q.moh.as_os_str().is_empty()) {
            return q.moh.clone();
        }
        let holder_ext = if !c.is_caller(holder) {
            c.b_ext.as_deref()
        } else if c.from_trunk.is_none() {
            Some(c.caller_number())
        } else {
            None
        };
        let ext = holder_ext
            .and_then(|e| self.users.get(e))
            .and_then(|u| u.moh.as_ref());
        let trunk = c
            .story
            .trunk()
            .and_then(|name| self.trunks.iter().find(|t| t.name == name))
            .and_then(|t| t.moh.as_ref());
        let class = ext.or(trunk).map_or("moh/default", String::as_str);
        self.sounds_dir.join(format!("{class}.wav"))
    }

    /// Offers the party on `leg` of call `id` our description again in `sendrecv`: it
    /// was held by a party it has left (a transfer moved it), and would otherwise stay
    /// silent, its phone sending nothing.
    pub(super) fn offer_sendrecv(&mut self, now: std::time::Instant, id: CallId, leg: LegId) {
        let Some(l) = self.calls.legs.get_mut(leg) else {
            return;
        };
        let Some(mut ours) = l.dialog.sdp_sent.as_ref().and_then(|b| Sdp::parse(b).ok()) else {
            return;
        };
        ours.set_direction(Direction::SendRecv);
        l.dialog.sdp_version += 1;
        ours.version = l.dialog.sdp_version;
        let body = Bytes::from(ours.to_bytes());
        l.dialog.sdp_sent = Some(body.clone());
        let extra = self.timer_request_headers(leg);
        self.send_our_reinvite(now, id, leg, body, CallTx::Unhold(leg), extra);
    }

    /// The description a call answered here (nobody to relay to) repeats to a mid-call
    /// offer on `leg`: what the leg already agreed, in the direction `offer` asks for
    /// (RFC 3264 §6.1), under a new version when that changes it.
    pub(super) fn answer_here(&mut self, leg: LegId, offer: Option<&Sdp>) -> Option<Bytes> {
        let leg = &mut self.calls.legs.get_mut(leg)?.dialog;
        let sent = leg.sdp_sent.clone()?;
        let Some(offer) = offer else {
            return Some(sent);
        };
        let mut ours = Sdp::parse(&sent).ok()?;
        let want = if offer.holds() {
            held_answer(offer.direction())
        } else {
            offer.direction().answer()
        };
        if ours.direction() == want {
            return Some(sent);
        }
        ours.set_direction(want);
        leg.sdp_version += 1;
        ours.version = leg.sdp_version;
        let body = Bytes::from(ours.to_bytes());
        leg.sdp_sent = Some(body.clone());
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(dir: &str) -> Sdp {
        Sdp::parse(
            format!(
                "v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na={dir}\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn an_offer_holds_resumes_or_neither_by_who_is_held() {
        use HoldChange as H;
        let (send, recv) = (offer("sendonly"), offer("sendrecv"));
        assert_eq!(hold_change(&send, 'a', None), H::Hold(Direction::SendOnly));
        assert_eq!(
            hold_change(&offer("inactive"), 'b', None),
            H::Hold(Direction::Inactive)
        );
        // A repeated hold from the holder stays a hold; the holder's sendrecv resumes.
        assert_eq!(
            hold_change(&send, 'a', Some('b')),
            H::Hold(Direction::SendOnly)
        );
        assert_eq!(hold_change(&recv, 'a', Some('b')), H::Resume);
        // Nothing held: an ordinary offer; the held party's own offers change nothing.
        assert_eq!(hold_change(&recv, 'a', None), H::None);
        assert_eq!(hold_change(&send, 'b', Some('b')), H::None);
        assert_eq!(hold_change(&recv, 'b', Some('b')), H::None);
    }

    #[test]
    fn the_holder_is_answered_recvonly_or_inactive() {
        assert_eq!(held_answer(Direction::SendOnly), Direction::RecvOnly);
        assert_eq!(held_answer(Direction::Inactive), Direction::Inactive);
        assert_eq!(held_answer(Direction::SendRecv), Direction::RecvOnly);
    }
}
