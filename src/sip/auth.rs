//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760): MD5 and SHA-256,
//! `qop=auth`, nonces that expire (answered with `stale=true`) and replay protection by
//! nonce count. Sans-IO: time enters as `now`, randomness as an argument.
//!
//! Nonces are self-validating (`timestamp.random.mac`, the MAC keyed by a secret the
//! driver draws at start), so a forged or foreign nonce is refused without a table lookup;
//! the table only remembers the highest nonce count seen per live nonce. Challenges do
//! not depend on the user name, so known and unknown users get the same answer shape.

use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use thiserror::Error;

use super::header::{is_token_char, unquote};

/// A digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
pub enum Algorithm {
    /// MD5 (RFC 2617); all SIP phones speak it.
    #[serde(rename = "MD5")]
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    /// The token in `algorithm=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    fn from_token(t: &[u8]) -> Option<Self> {
        if t.eq_ignore_ascii_case(b"MD5") {
            Some(Self::Md5)
        } else if t.eq_ignore_ascii_case(b"SHA-256") {
            Some(Self::Sha256)
        } else {
            None
        }
    }

    /// Hex digest of `data` under this algorithm.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Self::Md5 => to_hex(&Md5::digest(data)),
            Self::Sha256 => to_hex(&Sha256::digest(data)),
        }
    }
}

fn to_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// `H(username:realm:password)`, the form a password may be stored in.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hex(format!("{user}:{realm}:{password}").as_bytes())
}

/// The `response` value a client computes (RFC 7616 §3.4.1, `qop=auth` or none).
pub fn response(
    alg: Algorithm,
    ha1: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha2 = alg.hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some((nc, cnonce)) => alg.hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes()),
        None => alg.hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// The fields of an Authorization / Proxy-Authorization header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`.
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Option<Algorithm>,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `nc`, as 8 hex digits.
    pub nc: Option<String>,
    /// `qop`.
    pub qop: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
}

/// Why credentials could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthParseError {
    /// Not the Digest scheme.
    #[error("not a Digest credential")]
    NotDigest,
    /// Syntax error in the parameter list.
    #[error("malformed credential parameters")]
    Syntax,
    /// A mandatory parameter is missing.
    #[error("credential lacks {0}")]
    Missing(&'static str),
    /// The algorithm is not one we know.
    #[error("unsupported digest algorithm")]
    Algorithm,
}

/// Parses `Digest k=v, k="v", ...`.
pub fn parse_credentials(v: &Bytes) -> Result<Credentials, AuthParseError> {
    let s = v.as_ref();
    let sp = s
        .iter()
        .position(|&c| c == b' ' || c == b'\t')
        .ok_or(AuthParseError::NotDigest)?;
    if !s[..sp].eq_ignore_ascii_case(b"Digest") {
        return Err(AuthParseError::NotDigest);
    }
    let mut c = Credentials::default();
    let mut i = sp;
    let mut alg_raw = None;
    loop {
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= s.len() {
            break;
        }
        let ns = i;
        while i < s.len() && is_token_char(s[i]) {
            i += 1;
        }
        let name = &s[ns..i];
        while i < s.len() && matches!(s[i], b' ' | b'\t') {
            i += 1;
        }
        if name.is_empty() || i >= s.len() || s[i] != b'=' {
            return Err(AuthParseError::Syntax);
        }
        i += 1;
        while i < s.len() && matches!(s[i], b' ' | b'\t') {
            i += 1;
        }
        let vs = i;
        if i < s.len() && s[i] == b'"' {
            i += 1;
            while i < s.len() && s[i] != b'"' {
                if s[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= s.len() {
                return Err(AuthParseError::Syntax);
            }
            i += 1;
        } else {
            while i < s.len() && s[i] != b',' && s[i] != b' ' && s[i] != b'\t' {
                i += 1;
            }
        }
        let val = String::from_utf8_lossy(&unquote(&s[vs..i])).into_owned();
        match name.to_ascii_lowercase().as_slice() {
            b"username" => c.username = val,
            b"realm" => c.realm = val,
            b"nonce" => c.nonce = val,
            b"uri" => c.uri = val,
            b"response" => c.response = val,
            b"algorithm" => alg_raw = Some(val),
            b"cnonce" => c.cnonce = Some(val),
            b"nc" => c.nc = Some(val),
            b"qop" => c.qop = Some(val),
            b"opaque" => c.opaque = Some(val),
            _ => {}
        }
    }
    if let Some(a) = alg_raw {
        c.algorithm = Some(Algorithm::from_token(a.as_bytes()).ok_or(AuthParseError::Algorithm)?);
    }
    for (v, name) in [
        (&c.username, "username"),
        (&c.realm, "realm"),
        (&c.nonce, "nonce"),
        (&c.uri, "uri"),
        (&c.response, "response"),
    ] {
        if v.is_empty() {
            return Err(AuthParseError::Missing(name));
        }
    }
    if c.qop.is_some() && (c.nc.is_none() || c.cnonce.is_none()) {
        return Err(AuthParseError::Missing("nc/cnonce"));
    }
    Ok(c)
}

/// Answers a server's challenge as a client (for trunks that challenge our INVITEs and
/// REGISTERs). `challenge` is a WWW-Authenticate / Proxy-Authenticate value; `cnonce` and
/// `nc` come from the caller (randomness and the count of uses of this nonce). `None` when
/// the challenge is not a Digest we can answer.
pub fn client_authorization(
    challenge: &Bytes,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    // A challenge has the shape of credentials without the response; reuse that parser by
    // filling in what a challenge lacks.
    let text = String::from_utf8_lossy(challenge);
    let padded = format!("{text}, username=\"x\", uri=\"x\", response=\"x\", nc=1, cnonce=\"x\"");
    let c = parse_credentials(&Bytes::from(padded)).ok()?;
    let alg = c.algorithm.unwrap_or(Algorithm::Md5);
    let h = ha1(alg, user, &c.realm, password);
    let qop_auth = c
        .qop
        .as_deref()
        .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
    let nc = format!("{nc:08x}");
    let resp = response(
        alg,
        &h,
        method,
        uri,
        &c.nonce,
        qop_auth.then_some((nc.as_str(), cnonce)),
    );
    let mut out = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}",
        c.realm,
        c.nonce,
        alg.as_str()
    );
    if qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = c.opaque {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    Some(out)
}

/// Outcome of checking credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials prove knowledge of the password.
    Ok,
    /// Right password, but the nonce expired: challenge again with `stale=true`.
    Stale,
    /// Wrong password, unknown user, forged nonce, replayed nonce count, wrong realm.
    Rejected(&'static str),
}

/// Issues and checks nonces, and tracks nonce counts against replay.
pub struct DigestAuth {
    realm: String,
    secret: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
    algorithms: Vec<Algorithm>,
    /// Highest nonce count seen per nonce still in its lifetime (+ one lifetime of grace).
    seen: HashMap<String, u32>,
    expiry: VecDeque<(Instant, String)>,
}

impl DigestAuth {
    /// `secret` keys the nonce MAC (draw it from the OS at start); `epoch` is any instant
    /// before the first `now`; challenges offer `algorithms` in order.
    pub fn new(
        realm: &str,
        secret: [u8; 32],
        epoch: Instant,
        lifetime: Duration,
        algorithms: Vec<Algorithm>,
    ) -> Self {
        Self {
            realm: realm.to_string(),
            secret,
            epoch,
            lifetime,
            algorithms,
            seen: HashMap::new(),
            expiry: VecDeque::new(),
        }
    }

    /// Changes the algorithms offered and the nonce lifetime (on reload); nonces already
    /// issued stay valid.
    pub fn set_policy(&mut self, algorithms: Vec<Algorithm>, lifetime: Duration) {
        self.algorithms = algorithms;
        self.lifetime = lifetime;
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, ts: u64, rnd: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(ts.to_be_bytes());
        h.update(rnd.to_be_bytes());
        to_hex(&h.finalize()[..12])
    }

    /// A fresh nonce.
    pub fn nonce(&mut self, now: Instant, random: u64) -> String {
        self.prune(now);
        let ts = now.saturating_duration_since(self.epoch).as_secs();
        format!("{ts:x}.{random:016x}.{}", self.mac(ts, random))
    }

    /// The WWW-Authenticate / Proxy-Authenticate values for a challenge: one per
    /// configured algorithm, in the configured order of preference (RFC 8760 §2.4).
    pub fn challenges(&mut self, now: Instant, random: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now, random);
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    a.as_str(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now {
                break;
            }
            if let Some((_, n)) = self.expiry.pop_front() {
                self.seen.remove(&n);
            }
        }
    }

    /// Checks `creds` for `method`, given the user's HA1 for the credential's algorithm
    /// (`None` when the user is unknown: still verified against a dummy so the work done
    /// does not reveal which users exist).
    pub fn verify(
        &mut self,
        now: Instant,
        method: &str,
        creds: &Credentials,
        user_ha1: Option<&str>,
    ) -> Verdict {
        self.prune(now);
        let alg = creds.algorithm.unwrap_or(Algorithm::Md5);
        if !self.algorithms.contains(&alg) {
            return Verdict::Rejected("algorithm not offered");
        }
        if creds.realm != self.realm {
            return Verdict::Rejected("wrong realm");
        }
        // Nonce authenticity.
        let mut parts = creds.nonce.split('.');
        let (Some(ts), Some(rnd), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Verdict::Rejected("malformed nonce");
        };
        let (Ok(ts), Ok(rnd)) = (u64::from_str_radix(ts, 16), u64::from_str_radix(rnd, 16)) else {
            return Verdict::Rejected("malformed nonce");
        };
        if !constant_eq(self.mac(ts, rnd).as_bytes(), mac.as_bytes()) {
            return Verdict::Rejected("forged nonce");
        }
        let dummy;
        let ha1 = match user_ha1 {
            Some(h) => h,
            None => {
                dummy = ha1(alg, &creds.username, &self.realm, "\0unknown-user\0");
                &dummy
            }
        };
        let qop = match (&creds.qop, &creds.nc, &creds.cnonce) {
            (Some(q), Some(nc), Some(cn)) if q.eq_ignore_ascii_case("auth") => {
                Some((nc.as_str(), cn.as_str()))
            }
            (Some(_), _, _) => return Verdict::Rejected("unsupported qop"),
            _ => None,
        };
        let expected = response(alg, ha1, method, &creds.uri, &creds.nonce, qop);
        if !constant_eq(
            expected.as_bytes(),
            creds.response.to_ascii_lowercase().as_bytes(),
        ) || user_ha1.is_none()
        {
            return Verdict::Rejected("wrong credentials");
        }
        let issued = self.epoch + Duration::from_secs(ts);
        if now.saturating_duration_since(issued) > self.lifetime {
            return Verdict::Stale;
        }
        // Replay protection: nc must grow per nonce; without qop a nonce is single-use.
        let nc = match qop {
            Some((nc, _)) => match u32::from_str_radix(nc, 16) {
                Ok(n) if n > 0 => n,
                _ => return Verdict::Rejected("bad nonce count"),
            },
            None => 1,
        };
        match self.seen.get(&creds.nonce) {
            Some(&last) if nc <= last => return Verdict::Rejected("replayed nonce count"),
            Some(_) => {}
            None => self
                .expiry
                .push_back((issued + self.lifetime * 2, creds.nonce.clone())),
        }
        self.seen.insert(creds.nonce.clone(), nc);
        Verdict::Ok
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1 example: user Mufasa, password "Circle of Life".
    #[test]
    fn rfc7616_vectors_md5_and_sha256() {
        let realm = "http-auth@example.org";
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let uri = "/dir/index.html";
        let h = ha1(Algorithm::Md5, "Mufasa", realm, "Circle of Life");
        assert_eq!(
            response(
                Algorithm::Md5,
                &h,
                "GET",
                uri,
                nonce,
                Some(("00000001", cnonce))
            ),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let h = ha1(Algorithm::Sha256, "Mufasa", realm, "Circle of Life");
        assert_eq!(
            response(
                Algorithm::Sha256,
                &h,
                "GET",
                uri,
                nonce,
                Some(("00000001", cnonce))
            ),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// RFC 2617 §3.5 example (MD5, qop=auth).
    #[test]
    fn rfc2617_vector() {
        let h = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(
            response(
                Algorithm::Md5,
                &h,
                "GET",
                "/dir/index.html",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                Some(("00000001", "0a4f113b"))
            ),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    fn client(auth: &DigestAuth, alg: Algorithm, pw: &str, nc: u32, nonce: &str) -> Credentials {
        let h = ha1(alg, "1001", auth.realm(), pw);
        let nc = format!("{nc:08x}");
        Credentials {
            username: "1001".into(),
            realm: auth.realm().into(),
            nonce: nonce.into(),
            uri: "sip:pbx".into(),
            response: response(alg, &h, "REGISTER", "sip:pbx", nonce, Some((&nc, "abc"))),
            algorithm: Some(alg),
            cnonce: Some("abc".into()),
            nc: Some(nc),
            qop: Some("auth".into()),
            opaque: None,
        }
    }

    fn auth(t0: Instant) -> DigestAuth {
        DigestAuth::new(
            "pbx",
            [7; 32],
            t0,
            Duration::from_secs(60),
            vec![Algorithm::Sha256, Algorithm::Md5],
        )
    }

    #[test]
    fn accepts_good_rejects_wrong_and_replay() {
        let t0 = Instant::now();
        let mut a = auth(t0);
        let nonce = a.nonce(t0, 42);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let good_ha1 = ha1(alg, "1001", "pbx", "secret");
            let n = if alg == Algorithm::Md5 { 1 } else { 2 };
            let c = client(&a, alg, "secret", n, &nonce);
            assert_eq!(
                a.verify(t0, "REGISTER", &c, Some(&good_ha1)),
                Verdict::Ok,
                "{alg:?}"
            );
            // Same nc again: replay.
            assert_eq!(
                a.verify(t0, "REGISTER", &c, Some(&good_ha1)),
                Verdict::Rejected("replayed nonce count")
            );
            let bad = client(&a, alg, "wrong", 9, &nonce);
            assert!(matches!(
                a.verify(t0, "REGISTER", &bad, Some(&good_ha1)),
                Verdict::Rejected(_)
            ));
        }
    }

    #[test]
    fn unknown_user_and_forged_nonce_are_rejected() {
        let t0 = Instant::now();
        let mut a = auth(t0);
        let nonce = a.nonce(t0, 1);
        let c = client(&a, Algorithm::Md5, "x", 1, &nonce);
        assert!(matches!(
            a.verify(t0, "REGISTER", &c, None),
            Verdict::Rejected(_)
        ));
        let forged = format!("{}0", &nonce[..nonce.len() - 1]);
        let c = client(&a, Algorithm::Md5, "x", 1, &forged);
        let h = ha1(Algorithm::Md5, "1001", "pbx", "x");
        assert_eq!(
            a.verify(t0, "REGISTER", &c, Some(&h)),
            Verdict::Rejected("forged nonce")
        );
    }

    #[test]
    fn expired_nonce_is_stale_only_with_right_password() {
        let t0 = Instant::now();
        let mut a = auth(t0);
        let nonce = a.nonce(t0, 5);
        let later = t0 + Duration::from_secs(61);
        let h = ha1(Algorithm::Md5, "1001", "pbx", "pw");
        let c = client(&a, Algorithm::Md5, "pw", 1, &nonce);
        assert_eq!(a.verify(later, "REGISTER", &c, Some(&h)), Verdict::Stale);
        let c = client(&a, Algorithm::Md5, "bad", 1, &nonce);
        assert!(matches!(
            a.verify(later, "REGISTER", &c, Some(&h)),
            Verdict::Rejected(_)
        ));
    }

    #[test]
    fn our_client_answers_our_server() {
        let t0 = Instant::now();
        let mut a = auth(t0);
        let h = ha1(Algorithm::Sha256, "1001", "pbx", "pw-pw-pw");
        // Both challenges carry the same nonce, so the count must grow from one to the next.
        for (nc, chal) in (1..).zip(a.challenges(t0, 77, false)) {
            let v = client_authorization(
                &Bytes::from(chal),
                "INVITE",
                "sip:x@pbx",
                "1001",
                "pw-pw-pw",
                "cn",
                nc,
            )
            .unwrap();
            let creds = parse_credentials(&Bytes::from(v)).unwrap();
            let alg = creds.algorithm.unwrap();
            let h = if alg == Algorithm::Md5 {
                ha1(Algorithm::Md5, "1001", "pbx", "pw-pw-pw")
            } else {
                h.clone()
            };
            assert_eq!(
                a.verify(t0, "INVITE", &creds, Some(&h)),
                Verdict::Ok,
                "{alg:?}"
            );
        }
        // A challenge without qop (RFC 2069 style) is answered without it.
        let v = client_authorization(
            &Bytes::from_static(b"Digest realm=\"r\", nonce=\"n\""),
            "REGISTER",
            "sip:r",
            "u",
            "p",
            "c",
            1,
        )
        .unwrap();
        assert!(!v.contains("qop"), "{v}");
        assert!(client_authorization(
            &Bytes::from_static(b"Basic realm=\"r\""),
            "REGISTER",
            "sip:r",
            "u",
            "p",
            "c",
            1
        )
        .is_none());
    }

    #[test]
    fn parses_sipp_and_baresip_style_headers() {
        let v = Bytes::from_static(
            b"Digest username=\"1001\",realm=\"pbx\",nonce=\"n\",uri=\"sip:127.0.0.1\",response=\"abc\",algorithm=MD5,cnonce=\"6b8b4567\",qop=auth,nc=00000001",
        );
        let c = parse_credentials(&v).unwrap();
        assert_eq!(c.username, "1001");
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.algorithm, Some(Algorithm::Md5));
        assert!(parse_credentials(&Bytes::from_static(b"Basic abc")).is_err());
        assert!(parse_credentials(&Bytes::from_static(b"Digest username=\"a\"")).is_err());
    }

    #[test]
    fn credentials_are_read_with_space_around_equals_and_every_field_kept() {
        let v = Bytes::from_static(
            b"Digest username = \"1001\", realm=\"pbx\", nonce= \"n1\" ,uri =\"sip:pbx\", \
              response=\"abc\", algorithm=MD5, cnonce=\"c\", nc=00000001, qop=auth, opaque=\"op\"",
        );
        let c = parse_credentials(&v).unwrap();
        assert_eq!(
            (
                c.username.as_str(),
                c.realm.as_str(),
                c.nonce.as_str(),
                c.uri.as_str()
            ),
            ("1001", "pbx", "n1", "sip:pbx")
        );
        assert_eq!(c.response, "abc");
        assert_eq!(c.algorithm, Some(Algorithm::Md5));
        assert_eq!(
            (
                c.cnonce.as_deref(),
                c.nc.as_deref(),
                c.qop.as_deref(),
                c.opaque.as_deref()
            ),
            (Some("c"), Some("00000001"), Some("auth"), Some("op"))
        );
        // qop without nc and cnonce is not an answer.
        let v = Bytes::from_static(
            b"Digest username=\"1001\", realm=\"pbx\", nonce=\"n1\", uri=\"sip:pbx\", response=\"abc\", qop=auth",
        );
        assert_eq!(
            parse_credentials(&v).unwrap_err(),
            AuthParseError::Missing("nc/cnonce")
        );
    }

    #[test]
    fn spent_nonces_are_forgotten_once_expired_and_other_qops_are_refused() {
        let t0 = Instant::now();
        let mut a = auth(t0);
        let nonce = a.nonce(t0, 9);
        let h = ha1(Algorithm::Md5, "1001", "pbx", "pw");
        let c = client(&a, Algorithm::Md5, "pw", 1, &nonce);
        assert_eq!(a.verify(t0, "REGISTER", &c, Some(&h)), Verdict::Ok);
        assert!(
            !a.seen.is_empty(),
            "the nonce's count is kept while it lives"
        );
        // Kept for its lifetime and one more of grace (120 s here), then forgotten.
        let _ = a.verify(t0 + Duration::from_secs(119), "REGISTER", &c, Some(&h));
        assert!(!a.seen.is_empty());
        let later = t0 + Duration::from_secs(121);
        let _ = a.verify(later, "REGISTER", &c, Some(&h));
        assert!(
            a.seen.is_empty() && a.expiry.is_empty(),
            "and forgotten after"
        );
        let fresh = a.nonce(later, 10);
        let mut c = client(&a, Algorithm::Md5, "pw", 1, &fresh);
        c.qop = Some("auth-int".into());
        assert_eq!(
            a.verify(later, "REGISTER", &c, Some(&h)),
            Verdict::Rejected("unsupported qop")
        );
    }

    #[test]
    fn broken_credential_lists_are_refused_wherever_they_stop() {
        for bad in [
            "Digest username",
            "Digest username  ",
            "Digest username x",
            "Digest =x",
            "Digest username=\"abc",
            "Digest username=\"abc\\",
        ] {
            assert_eq!(
                parse_credentials(&Bytes::from(bad)).unwrap_err(),
                AuthParseError::Syntax,
                "{bad}"
            );
        }
        for empty in ["Digest username=", "Digest username=  "] {
            assert_eq!(
                parse_credentials(&Bytes::from(empty)).unwrap_err(),
                AuthParseError::Missing("username"),
                "{empty}"
            );
        }
        let c = parse_credentials(&Bytes::from_static(
            b"Digest username=\"a, b\", realm=\"my \\\"pbx\\\"\", nonce=n, uri=\"sip:pbx\", response=r",
        ))
        .unwrap();
        assert_eq!(c.username, "a, b", "a quoted value holds commas and spaces");
        assert_eq!(c.realm, "my \"pbx\"", "and escaped quotes");
        assert_eq!(c.nonce, "n");
        for half in ["nc=00000001", "cnonce=\"c\""] {
            let v = format!(
                "Digest username=u, realm=r, nonce=n, uri=\"sip:pbx\", response=x, qop=auth, {half}"
            );
            assert_eq!(
                parse_credentials(&Bytes::from(v)).unwrap_err(),
                AuthParseError::Missing("nc/cnonce"),
                "qop with only {half}"
            );
        }
    }

    #[test]
    fn challenges_offer_each_algorithm_in_order_and_say_when_stale() {
        let t0 = Instant::now();
        let mut a = auth(t0);
        let c = a.challenges(t0, 3, false);
        assert_eq!(c.len(), 2);
        assert!(
            c[0].starts_with("Digest realm=\"pbx\", nonce=\""),
            "{}",
            c[0]
        );
        assert!(
            c[0].ends_with("algorithm=SHA-256, qop=\"auth\""),
            "{}",
            c[0]
        );
        assert!(c[1].ends_with("algorithm=MD5, qop=\"auth\""), "{}", c[1]);
        let stale = a.challenges(t0, 4, true);
        assert!(stale.iter().all(|v| v.ends_with(", stale=true")));
        a.set_policy(vec![Algorithm::Md5], Duration::from_secs(10));
        let c = a.challenges(t0, 5, false);
        assert_eq!(c.len(), 1);
        assert!(c[0].contains("algorithm=MD5"));
        let nonce = a.nonce(t0, 6);
        let h = ha1(Algorithm::Md5, "1001", "pbx", "pw");
        let cr = client(&a, Algorithm::Md5, "pw", 1, &nonce);
        assert_eq!(
            a.verify(t0 + Duration::from_secs(11), "REGISTER", &cr, Some(&h)),
            Verdict::Stale,
            "the new lifetime holds"
        );
        let cr = client(&a, Algorithm::Sha256, "pw", 1, &nonce);
        let h = ha1(Algorithm::Sha256, "1001", "pbx", "pw");
        assert_eq!(
            a.verify(t0, "REGISTER", &cr, Some(&h)),
            Verdict::Rejected("algorithm not offered")
        );
    }

    #[test]
    fn a_nonce_is_ours_only_if_our_secret_made_it() {
        let t0 = Instant::now();
        let mut theirs = DigestAuth::new(
            "pbx",
            [8; 32],
            t0,
            Duration::from_secs(60),
            vec![Algorithm::Md5],
        );
        let mut ours = auth(t0);
        let nonce = theirs.nonce(t0, 1);
        let h = ha1(Algorithm::Md5, "1001", "pbx", "pw");
        let c = client(&ours, Algorithm::Md5, "pw", 1, &nonce);
        assert_eq!(
            ours.verify(t0, "REGISTER", &c, Some(&h)),
            Verdict::Rejected("forged nonce")
        );
        assert!(!constant_eq(b"ab", b"ba"), "differences never cancel out");
        assert!(!constant_eq(b"a", b"ab"));
        assert!(constant_eq(b"ab", b"ab"));
    }

    #[test]
    fn a_nonce_ages_from_when_it_was_issued_to_exactly_its_lifetime() {
        let t0 = Instant::now();
        let mut a = auth(t0);
        let t30 = t0 + Duration::from_secs(30);
        let nonce = a.nonce(t30, 2);
        let h = ha1(Algorithm::Md5, "1001", "pbx", "pw");
        let c = client(&a, Algorithm::Md5, "pw", 1, &nonce);
        assert_eq!(
            a.verify(t30 + Duration::from_secs(60), "REGISTER", &c, Some(&h)),
            Verdict::Ok,
            "60 s old is still within a 60 s lifetime"
        );
        let c = client(&a, Algorithm::Md5, "pw", 2, &nonce);
        assert_eq!(
            a.verify(t30 + Duration::from_secs(61), "REGISTER", &c, Some(&h)),
            Verdict::Stale
        );
        // Its count is forgotten exactly two lifetimes after it was issued.
        let _ = a.verify(t30 + Duration::from_secs(120), "REGISTER", &c, Some(&h));
        assert!(a.seen.is_empty(), "forgotten at 120 s");
        let fresh = a.nonce(t0, 3);
        let c = client(&a, Algorithm::Md5, "pw", 0, &fresh);
        assert_eq!(
            a.verify(t0, "REGISTER", &c, Some(&h)),
            Verdict::Rejected("bad nonce count")
        );
    }
}
