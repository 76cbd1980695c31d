//! The B2BUA: calls between two independent SIP legs, with switchboard in the media path,
//! driven by the dialplan.
//!
//! A call has its parties' legs, each with a role: the caller's (we are its UAS; a
//! callback has none until its customer answers) and, once a `dial` or a queue's offer is
//! answered, the callee's (we are its UAC). Each is a [`leg::Leg`] in the leg table
//! ([`leg::Legs`], ids in [`ids`]) with its own dialog, Call-ID, tags and CSeq space, so
//! neither party sees the other's dialog, and everything a request on a leg needs is found
//! on that leg, including what drives it ([`leg::Controller`]: the call's script, a dial,
//! a queue's offer, or switchboard calling the party itself). A device being rung is a leg
//! too, its ring state in its controller, until it answers and takes its role (or is given
//! up and leaves the table). The dialplan cursor decides what the call does
//! ([`crate::dialplan::Action`]); this module carries it out: answering locally
//! (echo, prompts), ringing a number, relaying B's responses to A, BYE on either side
//! ending the other, CANCEL from A cancelling B. SDP is rewritten so RTP flows through the
//! ports allocated here. A B leg given up on (caller hung up, ring timeout) is
//! *detached*: cancelled, and hung up should it answer anyway. Every call tells its story
//! as it goes ([`crate::story`]) and ends with exactly one record, the story and its CDR.
//!
//! Part of the endpoint (it shares its transaction table and owner task): it holds call
//! state only and reaches the relay and the store through emitted commands.
//!
//! The call is split by what each part does, over one set of types ([`state`], which
//! re-exports the ids and the leg): a new call
//! ([`inbound`]), running its dialplan ([`script`]), answering it ([`answer`]), dialling out
//! ([`dial`]) and the branches' answers ([`branch`]), requests inside its dialogs
//! ([`in_dialog`]), prompts ([`prompt`]), keys ([`collect`]), recordings ([`record`]), its
//! timers ([`timers`]), ending it ([`end`]), hold and its music ([`hold`]), parking
//! ([`park`]), call pickup ([`pickup`]), do not disturb and forwards ([`forward`]), session
//! refreshes that find a vanished party ([`refresh`]), callbacks
//! placed by the PBX ([`customer`]), blind transfer ([`transfer`]) and attended transfer
//! ([`attended`]), a dialog taken over by another phone ([`replace`]), and the messages it
//! builds ([`build`]). Feature files
//! share types through `state` only, and tell the media engine what to do through
//! [`media`] only (the one place that knows which media legs and bridge are a call's).

use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::media::{MediaCommand, PortPool};
use crate::sip::transaction::TxKey;

mod answer;
mod attended;
mod branch;
mod build;
mod collect;
mod consult;
mod customer;
mod dial;
mod end;
mod features;
mod forward;
mod hold;
mod ids;
mod in_dialog;
mod inactive;
mod inbound;
mod leaving;
mod leg;
mod media;
mod moving;
mod park;
mod pickup;
mod prompt;
mod record;
mod refresh;
mod reliable;
mod replace;
mod resend;
mod script;
mod session_timer;
pub(super) mod state;
mod timers;
mod transfer;

use ids::LegId;
use leg::Legs;
use state::{Call, CallId, CallTimer, Leg, MediaLeg};

/// Live call, for `ctl calls`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CallView {
    /// switchboard call id.
    pub id: u64,
    /// Caller.
    pub caller: String,
    /// Number dialled.
    pub callee: String,
    /// What the call is doing: `routing`, `playing`, `ringing`, `collecting`, `menu`,
    /// `record-prompt`, `recording`, `bridged`, `echo`, `goodbye`, `queued`, `parked`
    /// or `held` (its party waits while the other consults someone).
    pub state: String,
    /// Whether the caller was answered (by the PBX or through it).
    #[serde(default)]
    pub answered: bool,
    /// Devices ringing now for the call: a dial's, an agent's phone offered a queued
    /// call, a callback's customer.
    #[serde(default)]
    pub ringing: usize,
    /// The party on hold hearing music (`caller` or `callee`), if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hold: Option<String>,
    /// Seconds since the INVITE.
    pub age_s: u64,
    /// Its legs: the caller's, the callee's once it answered, each device being rung.
    #[serde(default)]
    pub legs: Vec<LegView>,
    /// How it moved so far: transfers (blind or attended, by whom, to whom), forwards,
    /// parks, retrievals, pickups, phones taking over; as its story tells them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<crate::story::Event>,
}

/// One leg of a live call, for `ctl calls`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegView {
    /// `caller`, `callee`, or `ringing` (a device being rung).
    pub role: String,
    /// The party: where requests on the leg go (its Contact, else its address).
    pub party: String,
    /// Our RTP port facing it, if its audio goes through us (devices being rung share
    /// one until one answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_port: Option<u16>,
    /// RTP packets received from the party on that port: the media engine counts them,
    /// so the driver fills this in (the core never sees a packet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_packets: Option<u64>,
    /// Our media leg facing it, for the driver to read the engine's counter by.
    #[serde(skip)]
    pub media: Option<crate::media::LegKey>,
    /// The bridge its audio is in (numbered as the call), if it is in one: a party alone
    /// with switchboard (a menu, a queue, on hold) is in none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<u64>,
    /// What drives it: `script` (the call's dialplan), `dial`, `queue` (an agent's phone
    /// offered the call) or `originate` (switchboard called the party itself).
    #[serde(default)]
    pub controller: String,
    /// Its dialog with the party, as a phone's Replaces names it and a capture shows
    /// it: the SIP Call-ID ...
    #[serde(default)]
    pub sip_call_id: String,
    /// ... our tag ...
    #[serde(default)]
    pub tag: String,
    /// ... and the party's, once it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_tag: Option<String>,
}

/// All calls, and what they emit.
pub(super) struct Calls {
    next_id: u64,
    /// Boxed for the reason legs are ([`leg::Legs`]): a call is over a kilobyte and the
    /// map's table grows by doubling.
    pub(super) calls: HashMap<CallId, Box<Call>>,
    /// Every call's legs.
    pub(super) legs: Legs,
    /// Our dialogs by (Call-ID, our tag): each is a leg's.
    by_dialog: HashMap<(Bytes, Bytes), LegId>,
    by_a_invite: HashMap<TxKey, CallId>,
    /// Parked calls by slot.
    pub(super) parked: HashMap<String, CallId>,
    /// Every call's armed deadlines, soonest first; an entry whose deadline its call's
    /// table no longer holds is stale and dropped when met.
    due: BinaryHeap<Reverse<(Instant, CallId, CallTimer)>>,
    ports: PortPool,
    /// Ports in the pool when nothing is in use.
    #[cfg(test)]
    ports_total: usize,
    /// The last media leg key handed out, and whose call each open one serves (the
    /// engine's reports name the leg).
    next_media: u64,
    media_calls: HashMap<crate::media::LegKey, CallId>,
    pub(super) media_out: VecDeque<MediaCommand>,
    /// Finished calls' records and stories, for the store.
    pub(super) records: VecDeque<crate::story::CallRecord>,
    pub(super) ring_timeout: Duration,
    /// How often answered parties confirm their dialogs (`None`: never).
    pub(super) session_refresh: Option<Duration>,
    /// How long an answered party may be silent (`None`: for ever).
    pub(super) rtp_timeout: Option<Duration>,
    /// The keys that start a blind transfer during a conversation (empty: off).
    pub(super) transfer_code: String,
    /// The keys that start a consultation during a conversation (empty: off).
    pub(super) attended_code: String,
    /// When the calls are next swept for refreshes due, while there are calls.
    sweep_at: Option<Instant>,
}

impl Calls {
    pub(super) fn new(
        rtp: (u16, u16),
        ring_timeout: Duration,
        session_refresh: Option<Duration>,
    ) -> Self {
        Self {
            next_id: 1,
            calls: HashMap::new(),
            legs: Legs::default(),
            by_dialog: HashMap::new(),
            by_a_invite: HashMap::new(),
            parked: HashMap::new(),
            due: BinaryHeap::new(),
            ports: PortPool::new(rtp.0, rtp.1),
            #[cfg(test)]
            ports_total: PortPool::new(rtp.0, rtp.1).available(),
            next_media: 0,
            media_calls: HashMap::new(),
            media_out: VecDeque::new(),
            records: VecDeque::new(),
            ring_timeout,
            session_refresh,
            rtp_timeout: None,
            transfer_code: String::new(),
            attended_code: String::new(),
            sweep_at: None,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    /// The leg a dialog of ours is, and its call.
    pub(super) fn dialog_of(&self, call_id: &Bytes, tag: &Bytes) -> Option<(CallId, LegId)> {
        let l = *self.by_dialog.get(&(call_id.clone(), tag.clone()))?;
        Some((self.legs.get(l)?.call, l))
    }

    /// The dialog a call rings extension `ext` on, if one does (the first device's):
    /// a busy lamp shows it ringing.
    pub(super) fn ringing_at(
        &self,
        ext: &str,
    ) -> Option<Option<crate::endpoint::blf::RingingDialog>> {
        let c = self
            .calls
            .values()
            .filter(|c| !c.dialing.is_empty() && c.b_ext.as_deref() == Some(ext))
            .min_by_key(|c| c.started)?;
        let leg = c.dialing.first().and_then(|&d| self.legs.get(d));
        Some(leg.map(|l| {
            crate::endpoint::blf::RingingDialog {
                call_id: String::from_utf8_lossy(&l.dialog.call_id).into_owned(),
                local_tag: String::from_utf8_lossy(&l.dialog.local_tag).into_owned(),
                remote_tag: l
                    .dialog
                    .remote_tag
                    .as_ref()
                    .map(|t| String::from_utf8_lossy(t).into_owned()),
            }
        }))
    }

    /// The caller's leg of call `id`.
    pub(super) fn caller(&self, id: CallId) -> Option<&Leg> {
        self.legs.get(self.calls.get(&id)?.caller()?)
    }

    /// The caller's leg of call `id`, to change it.
    pub(super) fn caller_mut(&mut self, id: CallId) -> Option<&mut Leg> {
        let a = self.calls.get(&id)?.caller()?;
        self.legs.get_mut(a)
    }

    /// What a dial for call `id` relays: the caller's offer and its media leg, if it has
    /// one yet; for a callback whose customer is not on the line, the offer we make the
    /// agent and the media leg kept for the customer.
    pub(super) fn origin(&self, id: CallId) -> Option<(crate::sdp::Sdp, Option<MediaLeg>)> {
        let c = self.calls.get(&id)?;
        match (self.caller(id), &c.callback) {
            (Some(a), _) => Some((a.sdp.clone()?, a.media)),
            (None, Some(cb)) => Some((cb.offer.clone(), cb.media)),
            (None, None) => None,
        }
    }

    /// The callee's leg of call `id`, once it answered.
    pub(super) fn callee(&self, id: CallId) -> Option<&Leg> {
        self.legs.get(self.calls.get(&id)?.callee()?)
    }

    /// The device being rung for call `id` whose INVITE transaction is `key` (a dial's
    /// branch or a callback's customer), and its leg.
    pub(super) fn branch(&mut self, id: CallId, key: &TxKey) -> Option<&mut Leg> {
        let c = self.calls.get(&id)?;
        let customer = c.callback.as_ref().and_then(|cb| cb.ringing);
        let d = c
            .dialing
            .iter()
            .copied()
            .chain(customer)
            .find(|&d| self.legs.get(d).is_some_and(|l| &l.invite_key == key))?;
        self.legs.get_mut(d)
    }

    /// Where in call `id`'s dial the device whose INVITE transaction is `key` stands.
    pub(super) fn branch_index(&self, id: CallId, key: &TxKey) -> Option<usize> {
        self.calls
            .get(&id)?
            .dialing
            .iter()
            .position(|&d| self.legs.get(d).is_some_and(|l| &l.invite_key == key))
    }

    /// Adds `leg` to the table, its dialog found by [`Self::dialog_of`] from now on.
    pub(super) fn add_leg(&mut self, leg: Leg) -> LegId {
        let key = (leg.dialog.call_id.clone(), leg.dialog.local_tag.clone());
        let id = self.legs.insert(leg);
        self.by_dialog.insert(key, id);
        id
    }

    /// Takes a leg out of the table with its dialog; its media leg, if it has one,
    /// closes.
    pub(super) fn remove_leg(&mut self, id: LegId) -> Option<Leg> {
        let mut leg = self.legs.remove(id)?;
        if let Some(m) = leg.media.take() {
            self.close_media(m);
        }
        let key = (leg.dialog.call_id.clone(), leg.dialog.local_tag.clone());
        if self.by_dialog.get(&key) == Some(&id) {
            self.by_dialog.remove(&key);
        }
        Some(leg)
    }

    /// Media legs reserved or open, and ports out of the pool: 0 once every call is
    /// over, or something leaked.
    #[cfg(test)]
    pub(super) fn media_live(&self) -> usize {
        self.media_calls.len() + (self.ports_total - self.ports.available())
    }

    /// Calls, legs and indexed dialogs live now: all three are 0 once every call is over,
    /// or something leaked.
    #[cfg(test)]
    pub(super) fn live(&self) -> (usize, usize, usize) {
        (self.calls.len(), self.legs.len(), self.by_dialog.len())
    }

    /// Callers' INVITEs still indexed (0 once every call is over).
    #[cfg(test)]
    pub(super) fn invites_indexed(&self) -> usize {
        self.by_a_invite.len()
    }

    /// A fresh call id.
    pub(super) fn new_id(&mut self) -> CallId {
        let id = CallId(self.next_id);
        self.next_id += 1;
        id
    }

    pub(super) fn poll_timeout(&mut self) -> Option<Instant> {
        let sweep = self.sweep_at;
        while let Some(Reverse((at, id, kind))) = self.due.peek().copied() {
            let live = self
                .calls
                .get(&id)
                .is_some_and(|c| c.timers.get(kind) == Some(at));
            if live {
                return Some(sweep.map_or(at, |s| s.min(at)));
            }
            self.due.pop();
        }
        sweep
    }

    /// Call `id` (just begun at `now`) is refreshed one interval from now, if refreshes
    /// are on; the sweep runs while there are calls.
    pub(super) fn refresh_later(&mut self, id: CallId, now: Instant) {
        let Some(every) = self.session_refresh else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&id) {
            c.refresh_at = Some(now + every);
        }
        if self.sweep_at.is_none() {
            self.sweep_at = Some(now + Self::sweep_step(every));
        }
    }

    /// How often the calls are swept: a thirtieth of the interval, between 1 s and 3 s
    /// (a refresh comes that much late at most; a negotiated interval may be as short as
    /// 90 s, whose party is given 30 s of grace).
    fn sweep_step(every: Duration) -> Duration {
        (every / 30).clamp(Duration::from_secs(1), Duration::from_secs(3))
    }

    pub(super) fn arm(&mut self, id: CallId, kind: CallTimer, at: Instant) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.timers.set(kind, at);
            self.due.push(Reverse((at, id, kind)));
        }
    }

    fn leg_views(&self, c: &Call) -> Vec<LegView> {
        // A callback's customer ringing, with the media leg kept for it.
        let customer = c
            .callback
            .as_ref()
            .and_then(|cb| Some((cb.ringing?, "ringing", cb.media)));
        let ringing = c
            .dialing
            .iter()
            .map(|&d| (d, "ringing", c.dial_media))
            .chain(customer);
        c.legs
            .iter()
            .map(|&(l, role)| {
                let role = match role {
                    state::Role::Caller => "caller",
                    state::Role::Callee => "callee",
                };
                (l, role, self.media_of(l))
            })
            .chain(ringing)
            .filter_map(|(l, role, media)| {
                let leg = self.legs.get(l)?;
                let bridge = c
                    .bridge
                    .as_ref()
                    .filter(|b| media.is_some_and(|m| b.members.contains(&m.key)));
                Some(LegView {
                    role: role.into(),
                    party: String::from_utf8_lossy(leg.dialog.target.as_bytes()).into_owned(),
                    rtp_port: media.map(|m| m.port),
                    rtp_packets: None,
                    media: media.map(|m| m.key),
                    bridge: bridge.map(|b| b.key.0),
                    controller: leg.controller.name().into(),
                    sip_call_id: String::from_utf8_lossy(&leg.dialog.call_id).into_owned(),
                    tag: String::from_utf8_lossy(&leg.dialog.local_tag).into_owned(),
                    remote_tag: leg
                        .dialog
                        .remote_tag
                        .as_ref()
                        .map(|t| String::from_utf8_lossy(t).into_owned()),
                })
            })
            .collect()
    }

    fn media_of(&self, leg: LegId) -> Option<state::MediaLeg> {
        self.legs.get(leg)?.media
    }

    pub(super) fn views(&self, now: Instant) -> Vec<CallView> {
        let mut v: Vec<CallView> = self
            .calls
            .iter()
            .map(|(id, c)| CallView {
                id: id.0,
                caller: c.caller_number().to_string(),
                callee: c.story.start().callee.clone(),
                state: c.state.name().into(),
                answered: c.answered,
                ringing: c.dialing.len()
                    + usize::from(c.callback.as_ref().is_some_and(|cb| cb.ringing.is_some())),
                on_hold: c.on_hold.map(|held| {
                    if c.is_caller(held) {
                        "caller".into()
                    } else {
                        "callee".into()
                    }
                }),
                age_s: now.saturating_duration_since(c.started).as_secs(),
                legs: self.leg_views(c),
                moves: c.story.moves(),
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }
}
