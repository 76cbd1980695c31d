//! Our own messages on a call's legs: the local address and Contact that reach a peer, a
//! fresh Via, an in-dialog request, and the ACK of a 2xx. Builds messages; sends nothing.

use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::super::Endpoint;
use crate::sip::dialog::{contact_uri, route_set, Dialog};
use crate::sip::header::Transport;
use crate::sip::msg::{HeaderName, Message, Method};
use crate::sip::transaction::{new_branch, Peer, Transmit};

impl Endpoint {
    /// Our address on the listener that reaches `peer` (same transport and family).
    pub(in crate::endpoint) fn local_for(&self, peer: &Peer) -> SocketAddr {
        let fam = peer.addr.is_ipv4();
        self.listeners
            .iter()
            .find(|(t, a)| *t == peer.transport && a.is_ipv4() == fam)
            .or_else(|| self.listeners.iter().find(|(_, a)| a.is_ipv4() == fam))
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::new(peer.addr.ip(), 5060))
    }

    pub(in crate::endpoint) fn contact_value(&self, peer: &Peer) -> Bytes {
        let local = self.local_for(peer);
        let tp = match peer.transport {
            Transport::Tcp => ";transport=tcp",
            _ => "",
        };
        Bytes::from(format!("<sip:switchboard@{local}{tp}>"))
    }

    pub(super) fn media_ip(&self, peer: &Peer) -> IpAddr {
        self.local_for(peer).ip()
    }

    pub(in crate::endpoint) fn unix_ms(&self, now: Instant) -> u64 {
        self.wall_epoch_ms + now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub(super) fn via_for(&mut self, peer: &Peer) -> Bytes {
        let local = self.local_for(peer);
        let branch = new_branch(self.rng_u64());
        Bytes::from(format!(
            "SIP/2.0/{} {local};branch={branch};rport",
            peer.transport.as_str()
        ))
    }

    /// A request inside `leg`'s dialog (BYE, ACK), with a fresh Via.
    pub(in crate::endpoint) fn leg_request(
        &mut self,
        method: Method,
        leg: &Dialog,
        cseq: u32,
    ) -> Message {
        let mut m = Message::request(method.clone(), leg.target.clone());
        m.push_header(HeaderName::Via, self.via_for(&leg.peer));
        m.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        // On leg A we are the UAS: our From is the A-leg To (with our tag), and vice versa.
        m.push_header(HeaderName::From, leg.local_hdr.clone());
        m.push_header(HeaderName::To, leg.remote_hdr.clone());
        m.push_header(HeaderName::CallId, leg.call_id.clone());
        m.push_header(HeaderName::CSeq, Bytes::from(format!("{cseq} {method}")));
        for r in &leg.routes {
            m.push_header(HeaderName::Route, r.clone());
        }
        m
    }

    /// Our INVITE on leg `leg` was answered with 2xx `msg`: its dialog is confirmed and
    /// ACKed, and the ACK kept to send again should the 2xx come again.
    pub(super) fn confirm_leg(&mut self, leg: super::state::LegId, msg: &Message) {
        let Some(mut dialog) = self.calls.legs.get(leg).map(|l| l.dialog.clone()) else {
            return;
        };
        let ack = self.confirm(&mut dialog, msg);
        if let Some(l) = self.calls.legs.get_mut(leg) {
            l.dialog = dialog;
            l.ack = Some(ack);
        }
    }

    /// Our INVITE on `leg` was answered with 2xx `msg`: the dialog becomes the 2xx's (RFC
    /// 3261 §12.1.2: its To tag, Contact and route set), and it is ACKed at once (§13.2.2.4),
    /// with the INVITE's CSeq, which the 2xx carries (2 after a digest challenge; the
    /// dialog's own count has moved on if we sent a PRACK). The ACK, to send again if the
    /// 2xx is.
    pub(super) fn confirm(&mut self, leg: &mut Dialog, msg: &Message) -> Bytes {
        leg.remote_hdr = msg
            .header(&HeaderName::To)
            .cloned()
            .unwrap_or_else(|| leg.remote_hdr.clone());
        leg.remote_tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
        if let Some(u) = contact_uri(msg) {
            leg.target = u;
        }
        leg.routes = route_set(msg, true);
        let seq = msg.cseq().map_or(leg.cseq, |c| c.seq);
        let ack = self.leg_request(Method::Ack, leg, seq).to_bytes();
        self.out.push_back(Transmit {
            peer: leg.peer.clone(),
            bytes: ack.clone(),
        });
        ack
    }
}
