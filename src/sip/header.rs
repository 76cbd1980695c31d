//! Typed views of the header fields the stack itself reads: Via, From/To/Contact/Route
//! (name-addr), CSeq, and the numeric headers. Each parser takes a header value (already
//! unfolded and trimmed by the message parser) and returns slices of it; none allocates
//! beyond the small parameter vectors.

use bytes::Bytes;

use super::method::Method;
use super::uri::{parse_port, split_hostport, Uri};
use super::HeaderError;

/// Parameters `;name[=value]` in order, as received.
pub type Params = Vec<(Bytes, Option<Bytes>)>;

/// Looks a parameter up by name, case-insensitively.
pub fn param<'a>(params: &'a Params, name: &str) -> Option<Option<&'a Bytes>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_ref())
}

pub use super::chars::{is_token as is_token_char, is_word as is_word_char};

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    i
}

fn trim_end(s: &[u8], mut end: usize, start: usize) -> usize {
    while end > start && is_ws(s[end - 1]) {
        end -= 1;
    }
    end
}

/// Scans a quoted string starting at the opening quote; returns the index after the
/// closing quote.
fn scan_quoted(s: &[u8], i: usize) -> Result<usize, HeaderError> {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return Ok(j + 1),
            _ => j += 1,
        }
    }
    Err(HeaderError::Syntax("unterminated quoted string"))
}

/// Splits a comma-separated header value at top-level commas (outside quotes and angle
/// brackets). Empty elements are an error (RFC 4475 badinv01).
pub fn split_list(v: &Bytes) -> Result<Vec<Bytes>, HeaderError> {
    let s = v.as_ref();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_angle = false;
    while i < s.len() {
        match s[i] {
            b'"' => {
                i = scan_quoted(s, i)?;
                continue;
            }
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => {
                out.push(element(v, start, i)?);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(element(v, start, s.len())?);
    Ok(out)
}

fn element(v: &Bytes, start: usize, end: usize) -> Result<Bytes, HeaderError> {
    let s = v.as_ref();
    let a = skip_ws(s, start);
    let b = trim_end(s, end, a);
    if a == b {
        return Err(HeaderError::Syntax("empty list element"));
    }
    Ok(v.slice(a..b))
}

/// Parses `*( SEMI param )` starting at `i` (which must be at a ';' or the end).
/// Returns the parameters; anything else left over is an error.
fn parse_params_at(v: &Bytes, mut i: usize) -> Result<Params, HeaderError> {
    let s = v.as_ref();
    let mut params = Vec::new();
    loop {
        i = skip_ws(s, i);
        if i >= s.len() {
            return Ok(params);
        }
        if s[i] != b';' {
            return Err(HeaderError::Syntax("expected ';' before parameter"));
        }
        i = skip_ws(s, i + 1);
        let ns = i;
        while i < s.len() && is_token_char(s[i]) {
            i += 1;
        }
        if i == ns {
            return Err(HeaderError::Syntax("empty parameter name"));
        }
        let name = v.slice(ns..i);
        i = skip_ws(s, i);
        if i < s.len() && s[i] == b'=' {
            i = skip_ws(s, i + 1);
            let vs = i;
            if i < s.len() && s[i] == b'"' {
                i = scan_quoted(s, i)?;
            } else if i < s.len() && s[i] == b'[' {
                i += s[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .ok_or(HeaderError::Syntax("unterminated IPv6 reference"))?
                    + 1;
            } else {
                while i < s.len() && (is_token_char(s[i]) || s[i] == b':') {
                    i += 1;
                }
            }
            if i == vs {
                return Err(HeaderError::Syntax("empty parameter value"));
            }
            params.push((name, Some(v.slice(vs..i))));
        } else {
            params.push((name, None));
        }
    }
}

/// A Via transport.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket.
    Wss,
    /// Any other transport token.
    Other(Bytes),
}

impl Transport {
    fn from_token(t: &Bytes) -> Self {
        let u = t.as_ref();
        if u.eq_ignore_ascii_case(b"UDP") {
            Self::Udp
        } else if u.eq_ignore_ascii_case(b"TCP") {
            Self::Tcp
        } else if u.eq_ignore_ascii_case(b"TLS") {
            Self::Tls
        } else if u.eq_ignore_ascii_case(b"SCTP") {
            Self::Sctp
        } else if u.eq_ignore_ascii_case(b"WS") {
            Self::Ws
        } else if u.eq_ignore_ascii_case(b"WSS") {
            Self::Wss
        } else {
            Self::Other(t.clone())
        }
    }

    /// The token as printed in a Via.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other(b) => std::str::from_utf8(b).unwrap_or("?"),
        }
    }

    /// Whether the transport is reliable (no retransmissions, Timer E/G etc. not armed).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// One Via entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// The transport.
    pub transport: Transport,
    /// The sent-by host.
    pub host: Bytes,
    /// The sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, maddr, ...).
    pub params: Params,
    /// The whole entry as received, for copying into responses unchanged.
    pub raw: Bytes,
}

impl Via {
    /// The branch parameter.
    pub fn branch(&self) -> Option<&Bytes> {
        param(&self.params, "branch").flatten()
    }

    /// Whether `rport` is present (with or without a value).
    pub fn has_rport(&self) -> bool {
        param(&self.params, "rport").is_some()
    }
}

/// Parses a Via header value into its entries.
pub fn parse_via_list(v: &Bytes) -> Result<Vec<Via>, HeaderError> {
    split_list(v)?.iter().map(parse_via).collect()
}

fn parse_via(v: &Bytes) -> Result<Via, HeaderError> {
    let s = v.as_ref();
    // sent-protocol = name SLASH version SLASH transport, SLASH = SWS "/" SWS.
    let mut i = 0;
    let mut parts: [(usize, usize); 3] = [(0, 0); 3];
    for (k, part) in parts.iter_mut().enumerate() {
        i = skip_ws(s, i);
        let st = i;
        while i < s.len() && is_token_char(s[i]) {
            i += 1;
        }
        if i == st {
            return Err(HeaderError::Syntax("bad Via sent-protocol"));
        }
        *part = (st, i);
        if k < 2 {
            i = skip_ws(s, i);
            if i >= s.len() || s[i] != b'/' {
                return Err(HeaderError::Syntax("bad Via sent-protocol"));
            }
            i += 1;
        }
    }
    if !s[parts[0].0..parts[0].1].eq_ignore_ascii_case(b"SIP")
        || &s[parts[1].0..parts[1].1] != b"2.0"
    {
        return Err(HeaderError::Syntax("Via protocol is not SIP/2.0"));
    }
    let transport = Transport::from_token(&v.slice(parts[2].0..parts[2].1));
    let hs = skip_ws(s, i);
    if hs == i {
        return Err(HeaderError::Syntax("no space before Via sent-by"));
    }
    // sent-by ends at ';' or the end; SWS allowed around the ':' of the port.
    let he = s[hs..]
        .iter()
        .position(|&c| c == b';')
        .map_or(s.len(), |p| hs + p);
    let hb = trim_end(s, he, hs);
    let compact: Vec<u8>;
    let sent_by: &[u8] = if s[hs..hb].iter().any(|&c| is_ws(c)) {
        compact = s[hs..hb].iter().copied().filter(|&c| !is_ws(c)).collect();
        &compact
    } else {
        &s[hs..hb]
    };
    let (host_len, port) =
        split_hostport(sent_by).map_err(|_| HeaderError::Syntax("bad Via sent-by"))?;
    let host = v.slice(hs..hs + host_len);
    let params = parse_params_at(v, he)?;
    Ok(Via {
        transport,
        host,
        port,
        params,
        raw: v.clone(),
    })
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, with quotes removed if it was quoted (escapes kept).
    pub display: Option<Bytes>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (tag, expires, q, ...).
    pub params: Params,
}

impl NameAddr {
    /// The tag parameter.
    pub fn tag(&self) -> Option<&Bytes> {
        param(&self.params, "tag").flatten()
    }
}

/// Parses a single name-addr / addr-spec with parameters.
pub fn parse_name_addr(v: &Bytes) -> Result<NameAddr, HeaderError> {
    let s = v.as_ref();
    let mut i = skip_ws(s, 0);
    let mut display = None;
    if i < s.len() && s[i] == b'"' {
        let end = scan_quoted(s, i)?;
        display = Some(v.slice(i + 1..end - 1));
        i = skip_ws(s, end);
        if i >= s.len() || s[i] != b'<' {
            return Err(HeaderError::Syntax("expected '<' after display name"));
        }
    } else if let Some(lt) = s[i..].iter().position(|&c| c == b'<').map(|p| i + p) {
        // Unquoted display name: tokens and whitespace only (RFC 4475 baddn).
        let dn_end = trim_end(s, lt, i);
        if !s[i..dn_end].iter().all(|&c| is_token_char(c) || is_ws(c)) {
            return Err(HeaderError::Syntax(
                "display name must be a token list or quoted",
            ));
        }
        if dn_end > i {
            display = Some(v.slice(i..dn_end));
        }
        i = lt;
    }
    if i < s.len() && s[i] == b'<' {
        let gt = s[i..]
            .iter()
            .position(|&c| c == b'>')
            .map(|p| i + p)
            .ok_or(HeaderError::Syntax("missing '>'"))?;
        // No whitespace inside <> (RFC 4475 badaspec): Uri::parse rejects it.
        let uri = Uri::parse(&v.slice(i + 1..gt))?;
        let params = parse_params_at(v, gt + 1)?;
        return Ok(NameAddr {
            display,
            uri,
            params,
        });
    }
    // addr-spec: the URI runs to the first ';' and may not carry '?' or ',' (those need
    // <>; RFC 3261 §20.10, RFC 4475 regbadct).
    let end = s[i..]
        .iter()
        .position(|&c| c == b';')
        .map_or(s.len(), |p| i + p);
    let ue = trim_end(s, end, i);
    let uri_b = &s[i..ue];
    if uri_b.contains(&b'?') || uri_b.contains(&b',') {
        return Err(HeaderError::Syntax(
            "URI with '?' or ',' must be enclosed in <>",
        ));
    }
    let uri = Uri::parse(&v.slice(i..ue))?;
    let params = parse_params_at(v, end)?;
    Ok(NameAddr {
        display,
        uri,
        params,
    })
}

/// One Contact value.
// `Star` is rare and values are short-lived: boxing the address would cost an allocation
// per contact for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact {
    /// `*`, only valid in a REGISTER with Expires: 0.
    Star,
    /// An address.
    Addr(NameAddr),
}

/// Parses a Contact header value.
pub fn parse_contact_list(v: &Bytes) -> Result<Vec<Contact>, HeaderError> {
    if v.as_ref() == b"*" {
        return Ok(vec![Contact::Star]);
    }
    split_list(v)?
        .iter()
        .map(|e| parse_name_addr(e).map(Contact::Addr))
        .collect()
}

/// The CSeq header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2**31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

/// Parses `CSeq: 1*DIGIT LWS Method`.
pub fn parse_cseq(v: &Bytes) -> Result<CSeq, HeaderError> {
    let s = v.as_ref();
    let d = s
        .iter()
        .position(|&c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    let seq = parse_u32(&s[..d]).ok_or(HeaderError::Syntax("bad CSeq number"))?;
    if seq >= 1 << 31 {
        return Err(HeaderError::Syntax("CSeq number out of range"));
    }
    let ms = skip_ws(s, d);
    if ms == d || ms >= s.len() || !s[ms..].iter().all(|&c| is_token_char(c)) {
        return Err(HeaderError::Syntax("bad CSeq method"));
    }
    Ok(CSeq {
        seq,
        method: Method::from_token(&v.slice(ms..)),
    })
}

/// Parses a decimal u32 (leading zeros allowed, RFC 4475 wsinv), rejecting overflow.
pub fn parse_u32(d: &[u8]) -> Option<u32> {
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    d.iter().try_fold(0u32, |a, &c| {
        a.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

/// Parses Max-Forwards (0..=255).
pub fn parse_max_forwards(v: &Bytes) -> Result<u8, HeaderError> {
    parse_u32(v)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(HeaderError::Syntax("Max-Forwards must be 0..255"))
}

/// Parses a delta-seconds value such as Expires.
pub fn parse_delta_seconds(v: &[u8]) -> Result<u32, HeaderError> {
    parse_u32(v).ok_or(HeaderError::Syntax("bad delta-seconds"))
}

/// Checks a Call-ID: `word [ "@" word ]`.
pub fn check_call_id(v: &[u8]) -> Result<(), HeaderError> {
    let ok = !v.is_empty()
        && v.iter().filter(|&&c| c == b'@').count() <= 1
        && v.iter().all(|&c| c == b'@' || is_word_char(c))
        && v.first() != Some(&b'@')
        && v.last() != Some(&b'@');
    if ok {
        Ok(())
    } else {
        Err(HeaderError::Syntax("bad Call-ID"))
    }
}

/// Parses a comma-separated token list (Require, Supported, Allow).
pub fn parse_token_list(v: &Bytes) -> Result<Vec<Bytes>, HeaderError> {
    let items = split_list(v)?;
    if items.iter().all(|t| t.iter().all(|&c| is_token_char(c))) {
        Ok(items)
    } else {
        Err(HeaderError::Syntax("bad token in list"))
    }
}

/// Whether a Content-Type value names `ty` (`type/subtype`, lower case), whatever its
/// parameters and the case it is written in.
pub fn is_media_type(v: &[u8], ty: &str) -> bool {
    let bare = v.split(|&c| c == b';').next().unwrap_or_default();
    trim(bare).eq_ignore_ascii_case(ty.as_bytes())
}

/// Whether the Accept header values `accept` let a body of type `ty` (`type/subtype`,
/// lower case) through: one of their media ranges names it, its type with `/*`, or
/// `*/*` (RFC 3261 §20.1). An empty Accept lets nothing through; one that does not parse
/// is ignored rather than held against the sender.
pub fn accepts<'a>(accept: impl IntoIterator<Item = &'a Bytes>, ty: &str) -> bool {
    let (major, _) = ty.split_once('/').unwrap_or((ty, ""));
    let mut listed = false;
    for v in accept {
        listed = true;
        if trim(v).is_empty() {
            continue;
        }
        let Ok(ranges) = split_list(v) else {
            return true;
        };
        for r in ranges {
            let range = trim(r.split(|&c| c == b';').next().unwrap_or_default());
            if range.eq_ignore_ascii_case(ty.as_bytes())
                || range == b"*/*"
                || range
                    .strip_suffix(b"/*")
                    .is_some_and(|m| m.eq_ignore_ascii_case(major.as_bytes()))
            {
                return true;
            }
        }
    }
    !listed
}

fn trim(v: &[u8]) -> &[u8] {
    let a = v
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(v.len());
    let b = v
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(a, |b| b + 1);
    &v[a..b.max(a)]
}

/// Parses a Via `received=`/`rport=` style port value.
pub fn port_param(params: &Params, name: &str) -> Option<u16> {
    param(params, name).flatten().and_then(|p| parse_port(p))
}

/// Removes the surrounding quotes of a quoted-string parameter value and resolves
/// quoted-pairs. Unquoted values are returned as they are.
pub fn unquote(v: &[u8]) -> Vec<u8> {
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        let inner = &v[1..v.len() - 1];
        let mut out = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'\\' && i + 1 < inner.len() {
                out.push(inner[i + 1]);
                i += 2;
            } else {
                out.push(inner[i]);
                i += 1;
            }
        }
        out
    } else {
        v.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn via_with_spaces_and_params() {
        let v = parse_via_list(&b("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw, SIP/2.0/TCP [::1]:5061 ;rport;received=1.2.3.4")).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, Transport::Udp);
        assert_eq!(v[0].branch().unwrap().as_ref(), b"390skdjuw");
        assert_eq!(&v[1].host[..], b"[::1]");
        assert_eq!(v[1].port, Some(5061));
        assert!(v[1].has_rport());
    }

    #[test]
    fn via_rejects_empty_params() {
        assert!(parse_via_list(&b("SIP/2.0/UDP 192.0.2.15;;,;,,")).is_err());
        assert!(parse_via_list(&b("SIP/3.0/UDP h")).is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr(&b(
            "\"J \\\"Rosenberg\\\"\" <sip:jdrosen@example.com>;tag=98asjd8",
        ))
        .unwrap();
        assert_eq!(n.tag().unwrap().as_ref(), b"98asjd8");
        let n = parse_name_addr(&b("caller<sip:caller@example.com>;tag=323")).unwrap();
        assert_eq!(n.display.as_deref(), Some(&b"caller"[..]));
        let n = parse_name_addr(&b("sip:user@example.com;tag=1")).unwrap();
        assert_eq!(n.uri.aor(), "sip:user@example.com");
        assert_eq!(n.tag().unwrap().as_ref(), b"1");
        assert!(parse_name_addr(&b("Bell, Alexander <sip:a@b>")).is_err());
        assert!(parse_name_addr(&b("\"unterminated <sip:a@b>")).is_err());
        assert!(parse_name_addr(&b("< sip:a@b >")).is_err());
        assert!(parse_name_addr(&b("sip:user@example.com?Route=%3Csip:x%3E")).is_err());
    }

    #[test]
    fn cseq_and_numbers() {
        let c = parse_cseq(&b("0009 INVITE")).unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        assert!(parse_cseq(&b("36893488147419103232 INVITE")).is_err());
        assert!(parse_cseq(&b("1")).is_err());
        assert_eq!(parse_max_forwards(&b("0068")).unwrap(), 68);
        assert!(parse_max_forwards(&b("300")).is_err());
        assert!(check_call_id(b"a@b").is_ok());
        assert!(check_call_id(b"a b").is_err());
    }

    #[test]
    fn contact_star_and_list() {
        assert_eq!(parse_contact_list(&b("*")).unwrap(), vec![Contact::Star]);
        let l = parse_contact_list(&b("<sip:a@h>;expires=60, \"B, b\" <sip:b@h>;q=0.5")).unwrap();
        assert_eq!(l.len(), 2);
        assert!(parse_contact_list(&b("<sip:a@h>;;;;")).is_err());
    }

    #[test]
    fn token_lists_quoted_values_and_edges_of_names_and_vias() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let list = parse_token_list(&b("timer, 100rel ,replaces")).unwrap();
        assert_eq!(list, [b("timer"), b("100rel"), b("replaces")]);
        assert!(parse_token_list(&b("timer, a<b")).is_err());
        assert_eq!(unquote(br#""a\"b""#), br#"a"b"#);
        assert_eq!(unquote(br#""a\\""#), br"a\");
        assert_eq!(
            unquote(br#""ab\""#),
            br"ab\",
            "a lone backslash at the end stays"
        );
        assert_eq!(unquote(br#"abc""#), br#"abc""#, "not quoted: as it is");
        assert_eq!(unquote(br#"""#), br#"""#);
        let na = parse_name_addr(&b("\"Bob\" <sip:bob@pbx>;tag=x")).unwrap();
        assert_eq!(na.display, Some(b("Bob")));
        assert_eq!(na.tag(), Some(&b("x")));
        // Cut at every edge: an error, never a panic.
        for cut in ["", "<sip:a@b>;tag=", "<sip:a@b>;tag", "\"Bob\""] {
            let _ = parse_name_addr(&b(cut));
        }
        for cut in ["SIP/2.0/", "SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP/"] {
            assert!(parse_via_list(&b(cut)).is_err(), "{cut:?}");
        }
    }

    #[test]
    fn a_cseq_needs_a_number_a_space_and_a_method() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let c = parse_cseq(&b("7 INVITE")).unwrap();
        assert_eq!((c.seq, c.method), (7, Method::Invite));
        for bad in [
            "7INVITE",
            "7 ",
            "7",
            "INVITE",
            "7 INV ITE",
            "2147483648 INVITE",
        ] {
            assert!(parse_cseq(&b(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_comma_inside_angle_brackets_does_not_split_a_list() {
        let v = split_list(&b("<sip:a@example.com;x=1,2>, <sip:c@example.com>")).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(&v[0][..], b"<sip:a@example.com;x=1,2>");
        assert_eq!(&v[1][..], b"<sip:c@example.com>");
    }

    #[test]
    fn an_ipv6_parameter_value_is_kept_whole_and_the_next_parameter_read() {
        let v = parse_via_list(&b("SIP/2.0/UDP h;maddr=[2001:db8::1];rport=5062;lr")).unwrap();
        let params = &v[0].params;
        assert_eq!(
            param(params, "maddr").flatten().map(|v| &v[..]),
            Some(&b"[2001:db8::1]"[..])
        );
        assert_eq!(port_param(params, "rport"), Some(5062));
        assert_eq!(param(params, "lr"), Some(None));
        assert_eq!(port_param(params, "lr"), None, "no value");
        assert_eq!(port_param(params, "received"), None, "absent");
        assert!(parse_via_list(&b("SIP/2.0/UDP h;maddr=[2001:db8::1")).is_err());
    }

    #[test]
    fn via_sent_protocol_needs_its_slashes_and_sent_by_may_hold_spaces() {
        assert!(parse_via_list(&b("SIP/2.0 UDP h")).is_err());
        assert!(parse_via_list(&b("SIP 2.0/UDP h")).is_err());
        let v = parse_via_list(&b("SIP/2.0/UDP host.example : 5070 ;branch=z9hG4bK1")).unwrap();
        assert_eq!(&v[0].host[..], b"host.example");
        assert_eq!(v[0].port, Some(5070));
    }

    #[test]
    fn transports_read_and_print_as_their_via_tokens() {
        for s in ["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "QUIC"] {
            let t = Transport::from_token(&b(&s.to_ascii_lowercase()));
            assert_eq!(
                t == Transport::Other(b(&s.to_ascii_lowercase())),
                s == "QUIC",
                "{s}"
            );
            if s != "QUIC" {
                assert_eq!(t.as_str(), s);
            }
        }
        assert_eq!(Transport::Other(b("QUIC")).as_str(), "QUIC");
    }

    #[test]
    fn a_name_addr_without_display_name_has_none() {
        assert_eq!(
            parse_name_addr(&b("<sip:a@example.com>")).unwrap().display,
            None
        );
        assert_eq!(
            parse_name_addr(&b("Alice <sip:a@example.com>"))
                .unwrap()
                .display
                .as_deref(),
            Some(&b"Alice"[..])
        );
    }

    #[test]
    fn decimal_numbers_are_digits_only_and_never_empty() {
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"1a"), None);
        assert_eq!(parse_u32(b"007"), Some(7));
        assert_eq!(parse_u32(b"4294967296"), None);
    }
}
