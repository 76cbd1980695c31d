//! Registering with trunks that want it (RFC 3261 §10.2 as a client): one REGISTER per
//! trunk, answered challenges, refresh before expiry, retry after failure. Part of the
//! endpoint; it owns these registrations' state only.

use bytes::Bytes;
use std::time::{Duration, Instant};

use super::owner::TxOwner;
use super::Endpoint;
use crate::sip::header::{self, Transport};
use crate::sip::msg::{HeaderName, Message, Method};
use crate::sip::transaction::{Peer, TxKey};
use crate::sip::uri::Uri;

/// How long to wait before trying again after a failure.
const RETRY: Duration = Duration::from_secs(60);

/// One trunk registration's state, for `ctl status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrunkRegView {
    /// Trunk name.
    pub trunk: String,
    /// `registering`, `registered` or `failed: ...`.
    pub state: String,
    /// Seconds until the registration lapses (0 unless registered).
    pub expires_in: u64,
}

pub(super) struct TrunkReg {
    trunk: usize,
    call_id: Bytes,
    from_tag: String,
    cseq: u32,
    nc: u32,
    pending: Option<TxKey>,
    auth_tried: bool,
    registered_until: Option<Instant>,
    next_at: Option<Instant>,
    state: String,
}

#[derive(Default)]
pub(super) struct TrunkRegs {
    regs: Vec<TrunkReg>,
}

impl TrunkRegs {
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.regs.iter().filter_map(|r| r.next_at).min()
    }
}

impl Endpoint {
    /// Sets up a registration for every trunk that asks for one; the first REGISTER goes
    /// out at the first timer.
    pub(super) fn init_trunk_regs(&mut self, now: Instant) {
        let wanted: Vec<(usize, String)> = self
            .trunks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.register)
            .map(|(i, t)| (i, t.name.clone()))
            .collect();
        for (i, name) in wanted {
            let call_id = Bytes::from(format!(
                "reg-{name}-{:016x}@{}",
                self.rng_u64(),
                self.domain
            ));
            let from_tag = format!("{:016x}", self.rng_u64());
            self.trunk_regs.regs.push(TrunkReg {
                trunk: i,
                call_id,
                from_tag,
                cseq: 0,
                nc: 0,
                pending: None,
                auth_tried: false,
                registered_until: None,
                next_at: Some(now),
                state: "registering".into(),
            });
        }
    }

    /// Registration states, for `ctl status`.
    pub fn trunk_registrations(&self, now: Instant) -> Vec<TrunkRegView> {
        self.trunk_regs
            .regs
            .iter()
            .map(|r| TrunkRegView {
                trunk: self.trunks[r.trunk].name.clone(),
                state: r.state.clone(),
                expires_in: r
                    .registered_until
                    .map_or(0, |u| u.saturating_duration_since(now).as_secs()),
            })
            .collect()
    }

    fn send_trunk_register(&mut self, now: Instant, i: usize, authz: Option<(HeaderName, String)>) {
        let t = self.trunks[self.trunk_regs.regs[i].trunk].clone();
        let Some((user, _)) = t.credentials.clone() else {
            return;
        };
        let peer = Peer {
            transport: Transport::Udp,
            addr: t.address,
        };
        let local = self.local_for(&peer);
        let host = t.address.to_string();
        let Ok(uri) = Uri::parse(&Bytes::from(format!("sip:{host}"))) else {
            return;
        };
        let branch = crate::sip::transaction::new_branch(self.rng_u64());
        let r = &mut self.trunk_regs.regs[i];
        r.cseq += 1;
        let mut m = Message::request(Method::Register, uri);
        m.push_header(
            HeaderName::Via,
            Bytes::from(format!("SIP/2.0/UDP {local};branch={branch};rport")),
        );
        m.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        m.push_header(
            HeaderName::From,
            Bytes::from(format!("<sip:{user}@{host}>;tag={}", r.from_tag)),
        );
        m.push_header(HeaderName::To, Bytes::from(format!("<sip:{user}@{host}>")));
        m.push_header(HeaderName::CallId, r.call_id.clone());
        m.push_header(
            HeaderName::CSeq,
            Bytes::from(format!("{} REGISTER", r.cseq)),
        );
        m.push_header(
            HeaderName::Contact,
            Bytes::from(format!("<sip:{user}@{local}>")),
        );
        m.push_header(
            HeaderName::Expires,
            Bytes::from(t.register_expires.to_string()),
        );
        if let Some((n, v)) = authz {
            m.push_header(n, Bytes::from(v));
        }
        m.push_header(HeaderName::UserAgent, self.server_name.clone());
        r.next_at = None;
        match self.tx.send_request(now, m, peer) {
            Ok(k) => {
                self.owners.insert(k.clone(), TxOwner::TrunkReg(i));
                self.trunk_regs.regs[i].pending = Some(k);
            }
            Err(e) => {
                tracing::warn!(trunk = %t.name, error = %e, "REGISTER not sent");
                let r = &mut self.trunk_regs.regs[i];
                r.state = format!("failed: {e}");
                r.next_at = Some(now + RETRY);
            }
        }
    }

    /// Fires due registrations.
    pub(super) fn trunk_reg_timeouts(&mut self, now: Instant) {
        for i in 0..self.trunk_regs.regs.len() {
            let due = self.trunk_regs.regs[i].next_at.is_some_and(|at| at <= now);
            if due {
                self.trunk_regs.regs[i].auth_tried = false;
                self.send_trunk_register(now, i, None);
            }
        }
    }

    /// A response to our REGISTER `key` for trunk registration `i`.
    pub(super) fn on_trunk_reg_response(
        &mut self,
        now: Instant,
        key: &TxKey,
        i: usize,
        msg: &Message,
    ) {
        let Some(status) = msg.status() else {
            return;
        };
        if status.is_provisional() {
            return;
        }
        self.owners.remove(key);
        self.trunk_regs.regs[i].pending = None;
        let t = self.trunks[self.trunk_regs.regs[i].trunk].clone();
        if status.is_success() {
            let asked = t.register_expires;
            // The registrar may shorten the interval: read what it granted.
            let granted = msg
                .headers_named(&HeaderName::Contact)
                .filter_map(|v| header::parse_contact_list(v).ok())
                .flatten()
                .find_map(|c| match c {
                    header::Contact::Addr(na) => header::param(&na.params, "expires")
                        .flatten()
                        .and_then(|e| header::parse_delta_seconds(e).ok()),
                    header::Contact::Star => None,
                })
                .or_else(|| {
                    msg.header(&HeaderName::Expires)
                        .and_then(|e| header::parse_delta_seconds(e).ok())
                })
                .unwrap_or(asked)
                .max(1);
            let r = &mut self.trunk_regs.regs[i];
            r.registered_until = Some(now + Duration::from_secs(u64::from(granted)));
            // Refresh well before it lapses.
            r.next_at = Some(
                now + Duration::from_secs(u64::from(granted) * 4 / 5).max(Duration::from_secs(1)),
            );
            r.state = "registered".into();
            tracing::info!(trunk = %t.name, granted, "registered with trunk");
            return;
        }
        let challenge = match status.as_u16() {
            401 => msg
                .header(&HeaderName::WwwAuthenticate)
                .map(|c| (c.clone(), HeaderName::Authorization)),
            407 => msg
                .header(&HeaderName::ProxyAuthenticate)
                .map(|c| (c.clone(), HeaderName::ProxyAuthorization)),
            _ => None,
        };
        if let (Some((chal, answer)), Some((user, pw)), false) = (
            challenge,
            t.credentials.clone(),
            self.trunk_regs.regs[i].auth_tried,
        ) {
            let uri = format!("sip:{}", t.address);
            let cnonce = format!("{:08x}", self.rng_u64() as u32);
            let r = &mut self.trunk_regs.regs[i];
            r.nc += 1;
            r.auth_tried = true;
            let nc = r.nc;
            if let Some(v) = crate::sip::auth::client_authorization(
                &chal, "REGISTER", &uri, &user, &pw, &cnonce, nc,
            ) {
                self.send_trunk_register(now, i, Some((answer, v)));
                return;
            }
        }
        let r = &mut self.trunk_regs.regs[i];
        r.registered_until = None;
        r.state = format!("failed: {status}");
        r.next_at = Some(now + RETRY);
        tracing::warn!(trunk = %t.name, %status, "trunk registration failed; retrying in 60 s");
    }

    /// Our REGISTER got no answer at all.
    pub(super) fn on_trunk_reg_timeout(&mut self, now: Instant, key: &TxKey, i: usize) {
        if self.owners.remove(key).is_some() {
            let r = &mut self.trunk_regs.regs[i];
            r.pending = None;
            r.registered_until = None;
            r.state = "failed: no response".into();
            r.next_at = Some(now + RETRY);
        }
    }
}
