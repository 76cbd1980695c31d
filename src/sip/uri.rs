//! SIP, SIPS and other URIs (RFC 3261 §19.1), parsed as slices of the message buffer.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use super::HeaderError;

/// A URI scheme.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966), kept opaque.
    Tel,
    /// Any other absolute URI, kept opaque.
    Other(Bytes),
}

/// A parsed URI. For `sip`/`sips` the parts are split out; other schemes keep only the raw
/// text (which is always kept, so printing what we received is exact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    /// The scheme.
    pub scheme: Scheme,
    /// The user part, still %-escaped as received.
    pub user: Option<Bytes>,
    /// The password part, if any (deprecated by RFC 3261, still parsed).
    pub password: Option<Bytes>,
    /// Host name, IPv4 address or bracketed IPv6 reference.
    pub host: Bytes,
    /// Port, if given.
    pub port: Option<u16>,
    /// `;name[=value]` parameters in order.
    pub params: Vec<(Bytes, Option<Bytes>)>,
    /// The `?headers` part without the `?`, if any.
    pub headers: Option<Bytes>,
    raw: Bytes,
}

use super::chars::{
    is_header as is_header_char, is_host as is_host_char, is_param as is_param_char,
    is_password as is_password_char, is_uri_forbidden, is_user as is_user_char,
};

impl Uri {
    /// Parses a URI. `raw` must already be trimmed; any whitespace inside is an error.
    pub fn parse(raw: &Bytes) -> Result<Self, HeaderError> {
        let s = raw.as_ref();
        let colon = s
            .iter()
            .position(|&c| c == b':')
            .ok_or(HeaderError::BadUri("no scheme"))?;
        let scheme_b = &s[..colon];
        if scheme_b.is_empty()
            || !scheme_b[0].is_ascii_alphabetic()
            || !scheme_b
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return Err(HeaderError::BadUri("bad scheme"));
        }
        if s.iter().any(|&c| is_uri_forbidden(c)) {
            return Err(HeaderError::BadUri("illegal character"));
        }
        let scheme = if scheme_b.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if scheme_b.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if scheme_b.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other(raw.slice(..colon))
        };
        if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
            if colon + 1 >= s.len() {
                return Err(HeaderError::BadUri("empty"));
            }
            return Ok(Self {
                scheme,
                user: None,
                password: None,
                host: Bytes::new(),
                port: None,
                params: Vec::new(),
                headers: None,
                raw: raw.clone(),
            });
        }
        let rest_start = colon + 1;
        let rest = &s[rest_start..];
        // The user part may hold ';', '?', ':' and ',' but never '@', so the first '@'
        // ends it (RFC 3261 §19.1.1, tested by RFC 4475 intmeth and semiuri).
        let (user, password, host_start) = match rest.iter().position(|&c| c == b'@') {
            Some(at) => {
                let ui = &rest[..at];
                let (u, p) = match ui.iter().position(|&c| c == b':') {
                    Some(pc) => (&ui[..pc], Some(&ui[pc + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() || !u.iter().all(|&c| is_user_char(c)) {
                    return Err(HeaderError::BadUri("bad user part"));
                }
                if let Some(p) = p {
                    if !p.iter().all(|&c| is_password_char(c)) {
                        return Err(HeaderError::BadUri("bad password"));
                    }
                }
                let ustart = rest_start;
                let user = raw.slice(ustart..ustart + u.len());
                let password = p.map(|p| {
                    let ps = ustart + u.len() + 1;
                    raw.slice(ps..ps + p.len())
                });
                (Some(user), password, rest_start + at + 1)
            }
            None => (None, None, rest_start),
        };
        let hp = &s[host_start..];
        let hp_end = hp
            .iter()
            .position(|&c| c == b';' || c == b'?')
            .unwrap_or(hp.len());
        let hostport = &hp[..hp_end];
        let (host_len, port) = split_hostport(hostport)?;
        let host = raw.slice(host_start..host_start + host_len);
        let mut params = Vec::new();
        let mut headers = None;
        let mut i = host_start + hp_end;
        while i < s.len() && s[i] == b';' {
            let start = i + 1;
            let end = s[start..]
                .iter()
                .position(|&c| c == b';' || c == b'?')
                .map_or(s.len(), |p| start + p);
            let p = &s[start..end];
            if p.is_empty() {
                return Err(HeaderError::BadUri("empty parameter"));
            }
            match p.iter().position(|&c| c == b'=') {
                Some(eq) => {
                    let (n, v) = (&p[..eq], &p[eq + 1..]);
                    if n.is_empty() || !n.iter().all(|&c| is_param_char(c)) {
                        return Err(HeaderError::BadUri("bad parameter name"));
                    }
                    if !v.iter().all(|&c| is_param_char(c)) {
                        return Err(HeaderError::BadUri("bad parameter value"));
                    }
                    params.push((
                        raw.slice(start..start + eq),
                        Some(raw.slice(start + eq + 1..end)),
                    ));
                }
                None => {
                    if !p.iter().all(|&c| is_param_char(c)) {
                        return Err(HeaderError::BadUri("bad parameter name"));
                    }
                    params.push((raw.slice(start..end), None));
                }
            }
            i = end;
        }
        if i < s.len() {
            // Must be '?'.
            let h = &s[i + 1..];
            if h.is_empty() || !h.iter().all(|&c| is_header_char(c)) {
                return Err(HeaderError::BadUri("bad headers part"));
            }
            headers = Some(raw.slice(i + 1..));
        }
        Ok(Self {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
            raw: raw.clone(),
        })
    }

    /// Builds a `sip:` URI from parts.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Self {
        let mut s = String::from("sip:");
        if let Some(u) = user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(host);
        if let Some(p) = port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        // Our own construction: fall back to an opaque URI rather than panic if a caller
        // passed something odd.
        let raw = Bytes::from(s);
        Self::parse(&raw).unwrap_or(Self {
            scheme: Scheme::Sip,
            user: None,
            password: None,
            host: Bytes::new(),
            port: None,
            params: Vec::new(),
            headers: None,
            raw,
        })
    }

    /// The URI exactly as received or built.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }

    /// A parameter's value (`Some(None)` for a flag parameter); names are case-insensitive.
    pub fn param(&self, name: &str) -> Option<Option<&Bytes>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_ref())
    }

    /// The user part with %-escapes decoded (lossy UTF-8), for lookups.
    pub fn user_decoded(&self) -> Option<String> {
        self.user.as_ref().map(|u| percent_decode(u))
    }

    /// The address-of-record form `sip:user@host` (no port, params or headers), used as the
    /// registrar's key.
    pub fn aor(&self) -> String {
        let scheme = match &self.scheme {
            Scheme::Sips => "sips",
            _ => "sip",
        };
        match self.user_decoded() {
            Some(u) => format!(
                "{scheme}:{u}@{}",
                String::from_utf8_lossy(&self.host).to_ascii_lowercase()
            ),
            None => format!(
                "{scheme}:{}",
                String::from_utf8_lossy(&self.host).to_ascii_lowercase()
            ),
        }
    }

    pub(crate) fn write_to(&self, out: &mut BytesMut) {
        out.put_slice(&self.raw);
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.raw))
    }
}

/// Splits `host[:port]`, returning the host length and port. Validates both.
pub(crate) fn split_hostport(hp: &[u8]) -> Result<(usize, Option<u16>), HeaderError> {
    if hp.is_empty() {
        return Err(HeaderError::BadUri("empty host"));
    }
    let host_len = if hp[0] == b'[' {
        let close = hp
            .iter()
            .position(|&c| c == b']')
            .ok_or(HeaderError::BadUri("unterminated IPv6 reference"))?;
        if !hp[1..close]
            .iter()
            .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return Err(HeaderError::BadUri("bad IPv6 reference"));
        }
        close + 1
    } else {
        let n = hp.iter().position(|&c| c == b':').unwrap_or(hp.len());
        if n == 0 || !hp[..n].iter().all(|&c| is_host_char(c)) {
            return Err(HeaderError::BadUri("bad host"));
        }
        n
    };
    let port = match &hp[host_len..] {
        [] => None,
        [b':', digits @ ..] => Some(parse_port(digits).ok_or(HeaderError::BadUri("bad port"))?),
        _ => return Err(HeaderError::BadUri("junk after host")),
    };
    Ok((host_len, port))
}

pub(crate) fn parse_port(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    d.iter()
        .try_fold(0u32, |a, &c| Some(a * 10 + u32::from(c - b'0')))
        .and_then(|n| u16::try_from(n).ok())
}

/// Decodes %XX escapes; a '%' not followed by two hex digits stays as it is.
pub fn percent_decode(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = (b[i + 1] as char).to_digit(16);
            let l = (b[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Uri, HeaderError> {
        Uri::parse(&Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn parses_parts() {
        let u = p("sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.user.as_deref(), Some(&b"alice"[..]));
        assert_eq!(u.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(&u.host[..], b"example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(
            u.param("transport"),
            Some(Some(&Bytes::from_static(b"tcp")))
        );
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers.as_deref(), Some(&b"subject=x"[..]));
        assert_eq!(u.aor(), "sip:alice@example.com");
    }

    #[test]
    fn ipv6_and_escapes() {
        let u = p("sip:%61lice@[::1]:5060").unwrap();
        assert_eq!(&u.host[..], b"[::1]");
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.user_decoded().as_deref(), Some("alice"));
        assert_eq!(percent_decode(b"null-%00-null"), "null-\0-null");
        assert_eq!(percent_decode(b"100%"), "100%");
    }

    #[test]
    fn rejects_bad() {
        for bad in [
            "sip:",
            "sip:user@",
            "sip:user@host:99999",
            "sip:host;;lr",
            "sip:us er@host",
            "<sip:host>",
            "sip:host:",
            "1sip:host",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_part_secure_aor_and_escapes_at_the_very_end() {
        let u = Uri::parse(&Bytes::from_static(b"sip:a@b?subject=x")).unwrap();
        assert_eq!(u.headers.as_deref(), Some(&b"subject=x"[..]));
        let u = Uri::parse(&Bytes::from_static(
            b"sips:1001@PBX.example:5061;transport=tls",
        ))
        .unwrap();
        assert_eq!(u.aor(), "sips:1001@pbx.example");
        assert_eq!(percent_decode(b"%41"), "A");
        assert_eq!(percent_decode(b"a%4"), "a%4", "cut short: left as it is");
        assert_eq!(percent_decode(b"a%"), "a%");
        assert_eq!(percent_decode(b"%zz1"), "%zz1");
    }

    #[test]
    fn empty_parts_are_refused_and_the_raw_text_is_kept() {
        assert!(
            p("tel:").is_err(),
            "a non-SIP URI with nothing after the scheme"
        );
        assert!(p("tel:1").is_ok(), "one character is enough");
        assert!(p("sip:@example.com").is_err(), "an empty user part");
        assert!(p("sip:a@example.com?").is_err(), "an empty headers part");
        assert!(p("sip:a@example.com?subject=x").is_ok());
        let raw = Bytes::from_static(b"sip:alice:pw@example.com:5070;transport=tcp?x=1");
        assert_eq!(Uri::parse(&raw).unwrap().as_bytes(), &raw);
    }

    #[test]
    fn ports_are_one_to_five_digits_within_range() {
        assert_eq!(parse_port(b"65535"), Some(65535));
        assert_eq!(parse_port(b"5"), Some(5));
        assert_eq!(parse_port(b""), None);
        assert_eq!(parse_port(b"123456"), None);
        assert_eq!(parse_port(b"65536"), None);
        assert_eq!(parse_port(b"50a"), None);
    }

    #[test]
    fn hosts_and_parameter_names_are_checked() {
        assert!(
            p("sip:a@[::ffff:192.0.2.1]:5060").is_ok(),
            "IPv4-mapped IPv6"
        );
        assert!(p("sip:a@[::1x]").is_err(), "not a hex digit");
        assert!(p("sip::5060").is_err(), "no host");
        assert!(p("sip:a@ex ample.com").is_err(), "a space in the host");
        assert!(p("sip:a@example.com;=x").is_err(), "no parameter name");
        assert!(
            p("sip:a@example.com;b@d=x").is_err(),
            "a bad parameter name"
        );
        assert!(p("sip:a@example.com;transport=tcp").is_ok());
    }
}
