//! The location service: bindings of addresses-of-record to contacts (RFC 3261 §10.3).
//!
//! Sans-IO: [`Registrar::register`] applies an (already authenticated and authorised)
//! REGISTER at `now`; [`Registrar::handle_timeout`] expires bindings. It owns the bindings
//! table and nothing else: authentication and the response are the server core's job.

use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};
use thiserror::Error;

use super::header::{self, Contact};
use super::msg::{HeaderName, Message};
use super::transaction::Peer;
use super::uri::Uri;

/// Limits on registration intervals and contacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest accepted interval; shorter gets 423 with Min-Expires.
    pub min_expires: u32,
    /// Longest granted interval; longer requests are cut to it.
    pub max_expires: u32,
    /// Interval when the request names none.
    pub default_expires: u32,
    /// Most contacts per address-of-record.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
        }
    }
}

/// One contact bound to an address-of-record.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The contact URI as the device gave it.
    pub uri: Uri,
    /// When it lapses.
    pub expires_at: Instant,
    /// Call-ID of the REGISTER that last refreshed it.
    pub call_id: Bytes,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// `q` preference, as given.
    pub q: Option<Bytes>,
    /// Where the REGISTER came from: requests to this contact go there, so phones behind
    /// NAT are reached on the address their packets actually left from.
    pub source: Peer,
    /// The device's User-Agent, for `ctl registrations`.
    pub user_agent: Option<Bytes>,
}

/// Why a REGISTER was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// Malformed for a registrar (e.g. `*` mixed with contacts, or with a non-zero expiry).
    #[error("{0}")]
    BadRequest(&'static str),
    /// An interval shorter than the minimum (answer 423 with Min-Expires).
    #[error("interval too brief, minimum {0}s")]
    IntervalTooBrief(u32),
    /// Same Call-ID with a CSeq not above the stored one (RFC 3261 §10.3 step 7).
    #[error("out-of-order REGISTER")]
    OutOfOrder,
    /// More contacts than allowed.
    #[error("too many contacts")]
    TooManyContacts,
}

/// The bindings table.
pub struct Registrar {
    cfg: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
    expiry: BinaryHeap<Reverse<(Instant, String)>>,
}

/// Whether two contact URIs name the same binding: scheme, user, host, port and
/// transport, compared as RFC 3261 §19.1.4 would for what a phone sends.
fn same_contact(a: &Uri, b: &Uri) -> bool {
    a.scheme == b.scheme
        && a.user == b.user
        && a.host.eq_ignore_ascii_case(&b.host)
        && a.port == b.port
        && a.param("transport")
            .map(|v| v.map(|t| t.to_ascii_lowercase()))
            == b.param("transport")
                .map(|v| v.map(|t| t.to_ascii_lowercase()))
}

impl Registrar {
    /// An empty table.
    pub fn new(cfg: RegistrarConfig) -> Self {
        Self {
            cfg,
            bindings: HashMap::new(),
            expiry: BinaryHeap::new(),
        }
    }

    /// Replaces the limits (on reload).
    pub fn set_config(&mut self, cfg: RegistrarConfig) {
        self.cfg = cfg;
    }

    /// Applies a REGISTER for `aor` from `source`. Returns the bindings now in force.
    pub fn register(
        &mut self,
        now: Instant,
        aor: &str,
        req: &Message,
        source: &Peer,
    ) -> Result<Vec<Binding>, RegisterError> {
        let call_id = req
            .call_id()
            .map_err(|_| RegisterError::BadRequest("no Call-ID"))?
            .clone();
        let cseq = req
            .cseq()
            .map_err(|_| RegisterError::BadRequest("no CSeq"))?
            .seq;
        let header_expires = match req.header(&HeaderName::Expires) {
            Some(v) => Some(
                header::parse_delta_seconds(v)
                    .map_err(|_| RegisterError::BadRequest("bad Expires"))?,
            ),
            None => None,
        };
        let mut contacts = Vec::new();
        for v in req.headers_named(&HeaderName::Contact) {
            contacts.extend(
                header::parse_contact_list(v)
                    .map_err(|_| RegisterError::BadRequest("bad Contact"))?,
            );
        }
        let user_agent = req.header(&HeaderName::UserAgent).cloned();
        if contacts.contains(&Contact::Star) {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(RegisterError::BadRequest(
                    "'*' needs Expires: 0 and no other contact",
                ));
            }
            if let Some(list) = self.bindings.get(aor) {
                if list.iter().any(|b| b.call_id == call_id && cseq <= b.cseq) {
                    return Err(RegisterError::OutOfOrder);
                }
            }
            self.bindings.remove(aor);
            return Ok(Vec::new());
        }
        // Validate everything before changing anything, so a refused REGISTER changes nothing.
        let mut planned = Vec::with_capacity(contacts.len());
        for c in contacts {
            let Contact::Addr(na) = c else { continue };
            let expires = match header::param(&na.params, "expires") {
                Some(Some(v)) => header::parse_delta_seconds(v)
                    .map_err(|_| RegisterError::BadRequest("bad expires"))?,
                Some(None) => return Err(RegisterError::BadRequest("expires without value")),
                None => header_expires.unwrap_or(self.cfg.default_expires),
            };
            if expires != 0 && expires < self.cfg.min_expires {
                return Err(RegisterError::IntervalTooBrief(self.cfg.min_expires));
            }
            let q = header::param(&na.params, "q").flatten().cloned();
            planned.push((na.uri, expires.min(self.cfg.max_expires), q));
        }
        let existing = self.bindings.get(aor).map(Vec::as_slice).unwrap_or(&[]);
        for (uri, _, _) in &planned {
            if existing
                .iter()
                .any(|b| same_contact(&b.uri, uri) && b.call_id == call_id && cseq <= b.cseq)
            {
                return Err(RegisterError::OutOfOrder);
            }
        }
        let mut list: Vec<Binding> = existing
            .iter()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        for (uri, expires, q) in planned {
            list.retain(|b| !same_contact(&b.uri, &uri));
            if expires > 0 {
                let at = now + Duration::from_secs(u64::from(expires));
                list.push(Binding {
                    uri,
                    expires_at: at,
                    call_id: call_id.clone(),
                    cseq,
                    q,
                    source: source.clone(),
                    user_agent: user_agent.clone(),
                });
                self.expiry.push(Reverse((at, aor.to_string())));
            }
        }
        if list.len() > self.cfg.max_contacts {
            return Err(RegisterError::TooManyContacts);
        }
        if list.is_empty() {
            self.bindings.remove(aor);
        } else {
            self.bindings.insert(aor.to_string(), list.clone());
        }
        Ok(list)
    }

    /// The live bindings of an address-of-record.
    pub fn lookup(&self, now: Instant, aor: &str) -> Vec<&Binding> {
        self.bindings
            .get(aor)
            .map(|l| l.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default()
    }

    /// Every live binding, sorted by address-of-record, for listing.
    pub fn all(&self, now: Instant) -> Vec<(&str, &Binding)> {
        let mut v: Vec<_> = self
            .bindings
            .iter()
            .flat_map(|(a, l)| {
                l.iter()
                    .filter(|b| b.expires_at > now)
                    .map(move |b| (a.as_str(), b))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0).then(a.1.expires_at.cmp(&b.1.expires_at)));
        v
    }

    /// Number of live bindings.
    pub fn count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// When [`Self::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Drops every binding that lapsed by `now`; returns the AORs that lost their last one.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some(Reverse((at, _))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, aor))) = self.expiry.pop() else {
                break;
            };
            if let Some(list) = self.bindings.get_mut(&aor) {
                list.retain(|b| b.expires_at > now);
                if list.is_empty() {
                    self.bindings.remove(&aor);
                    gone.push(aor);
                }
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::Transport;
    use crate::sip::parse::{parse_datagram, Limits};

    fn reg(contact: &str, expires: Option<u32>, call_id: &str, cseq: u32) -> Message {
        let exp = expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        let s = format!(
            "REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{cseq}\r\n\
From: <sip:1001@pbx>;tag=a\r\nTo: <sip:1001@pbx>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
Contact: {contact}\r\n{exp}Content-Length: 0\r\n\r\n"
        );
        parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
    }

    fn src() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
        }
    }

    #[test]
    fn register_refresh_multiple_and_unregister() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let t0 = Instant::now();
        let b = r
            .register(
                t0,
                "sip:1001@pbx",
                &reg("<sip:1001@127.0.0.1:5070>", Some(120), "c1", 1),
                &src(),
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        // Second device.
        let b = r
            .register(
                t0,
                "sip:1001@pbx",
                &reg("<sip:1001@127.0.0.1:5072>;expires=300", None, "c2", 1),
                &src(),
            )
            .unwrap();
        assert_eq!(b.len(), 2);
        // Refresh the first: still two.
        let b = r
            .register(
                t0 + Duration::from_secs(60),
                "sip:1001@pbx",
                &reg("<sip:1001@127.0.0.1:5070>", Some(120), "c1", 2),
                &src(),
            )
            .unwrap();
        assert_eq!(b.len(), 2);
        // Out of order.
        assert_eq!(
            r.register(
                t0,
                "sip:1001@pbx",
                &reg("<sip:1001@127.0.0.1:5070>", Some(120), "c1", 2),
                &src()
            )
            .unwrap_err(),
            RegisterError::OutOfOrder
        );
        // Remove one.
        let b = r
            .register(
                t0,
                "sip:1001@pbx",
                &reg("<sip:1001@127.0.0.1:5072>", Some(0), "c2", 2),
                &src(),
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        // Remove all.
        let b = r
            .register(t0, "sip:1001@pbx", &reg("*", Some(0), "c1", 3), &src())
            .unwrap();
        assert!(b.is_empty());
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn expiry_limits_and_lapse_on_a_virtual_clock() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let t0 = Instant::now();
        assert_eq!(
            r.register(t0, "a", &reg("<sip:1001@h>", Some(10), "c", 1), &src())
                .unwrap_err(),
            RegisterError::IntervalTooBrief(60)
        );
        assert!(matches!(
            r.register(t0, "a", &reg("*", Some(60), "c", 1), &src())
                .unwrap_err(),
            RegisterError::BadRequest(_)
        ));
        let b = r
            .register(t0, "a", &reg("<sip:1001@h>", Some(99999), "c", 2), &src())
            .unwrap();
        assert_eq!(
            b[0].expires_at,
            t0 + Duration::from_secs(3600),
            "capped at max"
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(3600)));
        assert!(r.handle_timeout(t0 + Duration::from_secs(3599)).is_empty());
        assert_eq!(r.lookup(t0 + Duration::from_secs(3599), "a").len(), 1);
        assert_eq!(
            r.handle_timeout(t0 + Duration::from_secs(3600)),
            vec!["a".to_string()]
        );
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn each_device_lapses_on_its_own_and_a_lapsed_one_is_not_carried_over() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        r.register(t0, "a", &reg("<sip:1001@h1>", Some(60), "c1", 1), &src())
            .unwrap();
        r.register(t0, "a", &reg("<sip:1001@h2>", Some(120), "c2", 1), &src())
            .unwrap();
        // The first lapses at 60 s; the second stays.
        assert!(
            r.handle_timeout(t0 + s * 60).is_empty(),
            "the address still has one"
        );
        let left: Vec<String> = r
            .lookup(t0 + s * 60, "a")
            .iter()
            .map(|b| b.uri.to_string())
            .collect();
        assert_eq!(left, ["sip:1001@h2"]);
        // A third device registering exactly when the second lapses does not bring it back.
        let b = r
            .register(
                t0 + s * 120,
                "a",
                &reg("<sip:1001@h3>", Some(60), "c3", 1),
                &src(),
            )
            .unwrap();
        let uris: Vec<String> = b.iter().map(|b| b.uri.to_string()).collect();
        assert_eq!(uris, ["sip:1001@h3"]);
    }

    #[test]
    fn too_many_contacts_changes_nothing() {
        let cfg = RegistrarConfig {
            max_contacts: 2,
            ..Default::default()
        };
        let mut r = Registrar::new(cfg);
        let t0 = Instant::now();
        r.register(
            t0,
            "a",
            &reg("<sip:1@h1>, <sip:1@h2>", Some(60), "c", 1),
            &src(),
        )
        .unwrap();
        assert_eq!(
            r.register(t0, "a", &reg("<sip:1@h3>", Some(60), "d", 1), &src())
                .unwrap_err(),
            RegisterError::TooManyContacts
        );
        assert_eq!(r.lookup(t0, "a").len(), 2);
    }

    #[test]
    fn bindings_live_until_just_before_they_expire_and_list_in_order() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let t0 = Instant::now();
        r.register(
            t0,
            "sip:1002@pbx",
            &reg("<sip:1002@127.0.0.1:5074>", Some(300), "d1", 1),
            &src(),
        )
        .unwrap();
        r.register(
            t0,
            "sip:1001@pbx",
            &reg("<sip:1001@127.0.0.1:5070>", Some(120), "c1", 1),
            &src(),
        )
        .unwrap();
        r.register(
            t0,
            "sip:1001@pbx",
            &reg("<sip:1001@127.0.0.1:5072>", Some(200), "c2", 1),
            &src(),
        )
        .unwrap();
        assert_eq!(r.count(), 3);
        let aors = |now| -> Vec<(String, u16)> {
            r.all(now)
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.uri.port.unwrap_or(0)))
                .collect()
        };
        assert_eq!(
            aors(t0),
            [
                ("sip:1001@pbx".to_string(), 5070),
                ("sip:1001@pbx".to_string(), 5072),
                ("sip:1002@pbx".to_string(), 5074)
            ],
            "by address-of-record, then soonest to expire"
        );
        let t120 = t0 + Duration::from_secs(120);
        assert_eq!(
            r.lookup(t120 - Duration::from_secs(1), "sip:1001@pbx")
                .len(),
            2
        );
        assert_eq!(
            r.lookup(t120, "sip:1001@pbx").len(),
            1,
            "gone at its expiry"
        );
        assert_eq!(aors(t120).len(), 2);
    }

    #[test]
    fn a_new_call_id_may_start_its_cseq_again_and_new_limits_apply() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let t0 = Instant::now();
        r.register(
            t0,
            "sip:1001@pbx",
            &reg("<sip:1001@127.0.0.1:5070>", Some(120), "c1", 5),
            &src(),
        )
        .unwrap();
        // The phone restarted: a fresh Call-ID from CSeq 1 is not out of order.
        let b = r
            .register(
                t0,
                "sip:1001@pbx",
                &reg("<sip:1001@127.0.0.1:5070>", Some(120), "c9", 1),
                &src(),
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        r.set_config(RegistrarConfig {
            min_expires: 90,
            ..RegistrarConfig::default()
        });
        assert_eq!(
            r.register(
                t0,
                "sip:1001@pbx",
                &reg("<sip:1001@127.0.0.1:5070>", Some(60), "c9", 2),
                &src()
            )
            .unwrap_err(),
            RegisterError::IntervalTooBrief(90)
        );
    }

    #[test]
    fn unregister_all_is_out_of_order_only_within_the_same_call_id() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let t0 = Instant::now();
        let aor = "sip:1001@pbx";
        r.register(
            t0,
            aor,
            &reg("<sip:1001@127.0.0.1:5070>", Some(120), "c1", 5),
            &src(),
        )
        .unwrap();
        assert_eq!(
            r.register(t0, aor, &reg("*", Some(0), "c1", 3), &src())
                .unwrap_err(),
            RegisterError::OutOfOrder,
            "an older CSeq of the same Call-ID"
        );
        // Another Call-ID (a phone that restarted) may remove them with any CSeq.
        let b = r
            .register(t0, aor, &reg("*", Some(0), "c9", 1), &src())
            .unwrap();
        assert!(b.is_empty(), "{b:?}");
    }
}
