//! One SIP leg of a call: the dialog with one party and what belongs to that dialog alone
//! (the INVITE that made it, our 2xx or our ACK to repeat until the other side has it, the
//! payload types we speak to it in, a re-offer it sent), and the table every leg lives in.
//! The feature files act on legs; this file says what a leg is and owns only the table's
//! bookkeeping (slots, generations).
//!
//! A call holds its caller's leg, a leg for each device it rings, and, once one answers,
//! that callee's leg. Everything a re-INVITE, a BYE or a retransmission needs is found on
//! the leg it arrived on, never on "the other side" of the call. Imports the ids and the
//! per-leg state types of the files that own them (none of which import this file).

use bytes::Bytes;

use super::ids::{CallId, LegId};
use super::resend::Retransmit2xx;
use crate::sdp::Sdp;
use crate::sip::dialog::Dialog;
use crate::sip::msg::Message;
use crate::sip::transaction::TxKey;

/// Every live leg, by id: a slab with a generation per slot, so a freed slot is reused
/// without an old id reaching its new leg.
#[derive(Default)]
pub(in crate::endpoint) struct Legs {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

/// A leg is boxed in its slot: a leg is over a kilobyte and the slots grow by doubling,
/// so inline legs would keep up to twice the live legs' bytes (measured with a heap
/// profile: BENCHMARKS.md, memory per call).
struct Slot {
    gen: u32,
    leg: Option<Box<Leg>>,
}

impl Legs {
    /// Adds a leg; its id.
    pub(in crate::endpoint) fn insert(&mut self, leg: Leg) -> LegId {
        if let Some(idx) = self.free.pop() {
            let slot = &mut self.slots[idx as usize];
            slot.leg = Some(Box::new(leg));
            return LegId { idx, gen: slot.gen };
        }
        let idx = u32::try_from(self.slots.len()).expect("fewer than 4 billion legs");
        self.slots.push(Slot {
            gen: 0,
            leg: Some(Box::new(leg)),
        });
        LegId { idx, gen: 0 }
    }

    /// The leg, if it is still there.
    pub(in crate::endpoint) fn get(&self, id: LegId) -> Option<&Leg> {
        self.slots
            .get(id.idx as usize)
            .filter(|s| s.gen == id.gen)
            .and_then(|s| s.leg.as_deref())
    }

    /// The leg, to change it.
    pub(in crate::endpoint) fn get_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.slots
            .get_mut(id.idx as usize)
            .filter(|s| s.gen == id.gen)
            .and_then(|s| s.leg.as_deref_mut())
    }

    /// Takes the leg out; its slot's next leg gets a new generation.
    pub(in crate::endpoint) fn remove(&mut self, id: LegId) -> Option<Leg> {
        let slot = self
            .slots
            .get_mut(id.idx as usize)
            .filter(|s| s.gen == id.gen)?;
        let leg = slot.leg.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(id.idx);
        Some(*leg)
    }

    /// Legs live now.
    #[cfg(test)]
    pub(in crate::endpoint) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// What a relayed mid-call offer does to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::endpoint) enum HoldChange {
    /// Neither holds nor resumes (a new address or codec, a refresh).
    None,
    /// Puts the other party on hold; the sender asked for this direction.
    Hold(crate::sdp::Direction),
    /// Takes the other party off hold.
    Resume,
}

/// A re-INVITE or UPDATE the party sent on its leg, relayed to the other leg and waiting
/// for its answer there.
pub(in crate::endpoint) struct Reoffer {
    /// Whether it holds or resumes.
    pub(in crate::endpoint) hold: HoldChange,
    /// Its server transaction on this leg.
    pub(in crate::endpoint) key: TxKey,
    /// The request, to answer it.
    pub(in crate::endpoint) request: Message,
    /// Our client transaction on the other leg.
    pub(in crate::endpoint) forwarded: TxKey,
}

/// How a device is being rung: what the ring has heard, and how to answer a trunk's
/// challenge.
#[derive(Debug, Default)]
pub(in crate::endpoint) struct Ring {
    /// A provisional answer came: a CANCEL may now end the ring (RFC 3261 §9.1).
    pub(in crate::endpoint) provisional: bool,
    /// Credentials for a trunk's 401/407, and whether they were used already.
    pub(in crate::endpoint) credentials: Option<(String, String)>,
    pub(in crate::endpoint) auth_tried: bool,
    /// The party answered: the ring is over and the leg is one of the call's parties.
    pub(in crate::endpoint) answered: bool,
    /// The RSeq of the last reliable provisional we acknowledged (RFC 3262 §4).
    pub(in crate::endpoint) rseq: Option<u32>,
}

impl Ring {
    /// A ring with nothing heard yet, answering a challenge with `credentials`.
    pub(in crate::endpoint) fn new(credentials: Option<(String, String)>) -> Self {
        Self {
            credentials,
            ..Self::default()
        }
    }
}

/// What drives a leg: the one thing that decides what happens to it next. Exactly one
/// per leg, set when the leg is made.
#[derive(Debug)]
pub(in crate::endpoint) enum Controller {
    /// The call's dialplan: the caller's leg.
    Script,
    /// A dial of the dialplan rang this device (an extension's phone, a trunk).
    Dial(Ring),
    /// A queue offered the call to the agent on this phone.
    Queue(Ring),
    /// switchboard called this party itself (a callback's customer).
    Originate(Ring),
}

impl Controller {
    /// Its name, as `ctl calls` shows it.
    pub(in crate::endpoint) fn name(&self) -> &'static str {
        match self {
            Self::Script => "script",
            Self::Dial(_) => "dial",
            Self::Queue(_) => "queue",
            Self::Originate(_) => "originate",
        }
    }

    /// The ring, for a leg we called.
    pub(in crate::endpoint) fn ring(&mut self) -> Option<&mut Ring> {
        match self {
            Self::Script => None,
            Self::Dial(r) | Self::Queue(r) | Self::Originate(r) => Some(r),
        }
    }
}

/// One party's leg of a call.
pub(in crate::endpoint) struct Leg {
    /// The call it is part of.
    pub(in crate::endpoint) call: CallId,
    /// The dialog with the party.
    pub(in crate::endpoint) dialog: Dialog,
    /// The INVITE transaction that made the leg: the caller's (which we answer) or ours to
    /// the callee (whose 2xx retransmissions must still find the call).
    pub(in crate::endpoint) invite_key: TxKey,
    /// That INVITE: the caller's, to build our responses from, or ours to the callee.
    pub(in crate::endpoint) invite: Message,
    /// The party's own SDP: the offer in its INVITE (a caller's), or its answer to ours
    /// (a callee's). What a call answered here answers, and what a dial made on the
    /// party's behalf (after a transfer) offers on.
    pub(in crate::endpoint) sdp: Option<Sdp>,
    /// Our 2xx to the party's INVITE or re-INVITE, sent again until its ACK.
    pub(in crate::endpoint) ok: Option<Retransmit2xx>,
    /// Our ACK to the party's 2xx, sent again if the 2xx is.
    pub(in crate::endpoint) ack: Option<Bytes>,
    /// The party's re-INVITE or UPDATE, relayed and awaiting the other leg's answer.
    /// Boxed: rare, and half a leg's size inline.
    pub(in crate::endpoint) reoffer: Option<Box<Reoffer>>,
    /// The G.711 payload type of our own media to the party (prompts, music), from our
    /// answer, and its telephone-event type if it has one.
    pub(in crate::endpoint) pt: u8,
    pub(in crate::endpoint) te_pt: Option<u8>,
    /// Our media leg facing the party, once it has one.
    pub(in crate::endpoint) media: Option<MediaLeg>,
    /// Our reliable provisionals to a caller that takes them. Boxed: most callers do not.
    pub(in crate::endpoint) rel: Option<Box<super::reliable::Reliable>>,
    /// Its session timer, when negotiated with RFC 4028's headers.
    pub(in crate::endpoint) timer: Option<super::session_timer::SessionTimer>,
    /// What drives it.
    pub(in crate::endpoint) controller: Controller,
}

/// Our RTP port pair facing one party, and the media engine's key for it. A SIP leg
/// holds it once its party is heard through us; a dial's ringing devices share one
/// until the one that answers takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::endpoint) struct MediaLeg {
    pub(in crate::endpoint) key: crate::media::LegKey,
    /// Our RTP port (RTCP is the one above).
    pub(in crate::endpoint) port: u16,
}

impl Leg {
    /// A provisional answer on a leg we are ringing came with the party's tag: the early
    /// dialog takes it, if it had none.
    pub(in crate::endpoint) fn early(&mut self, tag: Option<Bytes>) {
        if let (Some(t), None) = (tag, &self.dialog.remote_tag) {
            self.dialog.remote_hdr = crate::sip::dialog::with_tag(&self.dialog.remote_hdr, &t);
            self.dialog.remote_tag = Some(t);
        }
    }

    /// A leg of `call` made by `invite` (transaction `invite_key`) in `dialog`, driven
    /// by `controller`; nothing sent on it yet.
    pub(in crate::endpoint) fn new(
        call: CallId,
        dialog: Dialog,
        (invite_key, invite): (TxKey, Message),
        controller: Controller,
    ) -> Self {
        Self {
            call,
            dialog,
            invite_key,
            invite,
            sdp: None,
            ok: None,
            ack: None,
            reoffer: None,
            pt: 0,
            te_pt: None,
            media: None,
            rel: None,
            timer: None,
            controller,
        }
    }

    /// The ring, while the party is being rung and has not answered.
    pub(in crate::endpoint) fn ringing(&mut self) -> Option<&mut Ring> {
        self.controller.ring().filter(|r| !r.answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(n: u64) -> Leg {
        let peer = crate::sip::transaction::Peer {
            transport: crate::sip::header::Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
        };
        let invite = Message::request(
            crate::sip::msg::Method::Invite,
            crate::sip::uri::Uri::sip(Some("1002"), "pbx", None),
        );
        let dialog = crate::sip::dialog::uas_dialog(&invite, &peer, Bytes::from_static(b"t"));
        let key = TxKey {
            role: crate::sip::transaction::Role::Server,
            branch: Bytes::from(format!("z9hG4bK{n}")),
            sent_by: 0,
            method: crate::sip::msg::Method::Invite,
        };
        Leg::new(CallId(n), dialog, (key, invite), Controller::Script)
    }

    #[test]
    fn an_id_outliving_its_leg_never_reaches_the_next_leg_in_its_slot() {
        let mut legs = Legs::default();
        let (a, b) = (legs.insert(leg(1)), legs.insert(leg(2)));
        assert_eq!(legs.len(), 2);
        assert_eq!(legs.get(a).map(|l| l.call), Some(CallId(1)));
        assert_eq!(legs.remove(a).map(|l| l.call), Some(CallId(1)));
        assert!(legs.remove(a).is_none(), "gone once");
        // The slot is reused, under a new generation.
        let c = legs.insert(leg(3));
        assert_ne!(a, c);
        assert!(legs.get(a).is_none() && legs.get_mut(a).is_none());
        assert_eq!(legs.get(c).map(|l| l.call), Some(CallId(3)));
        assert_eq!(legs.get_mut(b).map(|l| l.call), Some(CallId(2)));
        assert_eq!(legs.len(), 2);
    }
}
