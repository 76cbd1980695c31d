//! The Replaces header (RFC 3891): which dialog a new INVITE takes the place of. It
//! arrives on its own in an INVITE, or %-escaped in the headers part of a REFER's
//! Refer-To URI (an attended transfer: "call this target, replacing that dialog").

use bytes::Bytes;

use super::uri::{percent_decode, Uri};

/// A dialog named by a Replaces header: its Call-ID and two tags, and whether only an
/// early dialog may be replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaces {
    /// The dialog's Call-ID.
    pub call_id: Bytes,
    /// `to-tag`: the tag of the party the dialog's first request went to.
    pub to_tag: Bytes,
    /// `from-tag`: the tag of the party that sent it.
    pub from_tag: Bytes,
    /// `early-only`: refuse (486) if the dialog is already confirmed.
    pub early_only: bool,
}

impl Replaces {
    /// Parses a header value: `callid;to-tag=X;from-tag=Y[;early-only]`. Both tags are
    /// required (RFC 3891 §6.1); unknown parameters are ignored.
    pub fn parse(v: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(v).ok()?;
        let mut parts = text.split(';').map(str::trim);
        let call_id = parts.next().filter(|c| !c.is_empty())?;
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p, None),
            };
            if name.eq_ignore_ascii_case("to-tag") {
                to_tag = value.filter(|v| !v.is_empty());
            } else if name.eq_ignore_ascii_case("from-tag") {
                from_tag = value.filter(|v| !v.is_empty());
            } else if name.eq_ignore_ascii_case("early-only") {
                early_only = true;
            }
        }
        Some(Self {
            call_id: Bytes::copy_from_slice(call_id.as_bytes()),
            to_tag: Bytes::copy_from_slice(to_tag?.as_bytes()),
            from_tag: Bytes::copy_from_slice(from_tag?.as_bytes()),
            early_only,
        })
    }

    /// The Replaces a URI carries among its `?headers` (as a REFER's Refer-To does for
    /// an attended transfer): `Some(None)` if it names one that cannot be read.
    pub fn in_uri(uri: &Uri) -> Option<Option<Self>> {
        let headers = uri.headers.as_ref()?;
        let value = headers.split(|&c| c == b'&').find_map(|h| {
            let eq = h.iter().position(|&c| c == b'=')?;
            h[..eq]
                .eq_ignore_ascii_case(b"Replaces")
                .then(|| percent_decode(&h[eq + 1..]))
        })?;
        Some(Self::parse(value.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_value_names_a_dialog_by_call_id_and_both_tags() {
        let r = Replaces::parse(b"98asjd8@pbx.example ; to-tag=12345;from-tag=54321;early-only")
            .unwrap();
        assert_eq!(&r.call_id[..], b"98asjd8@pbx.example");
        assert_eq!(&r.to_tag[..], b"12345");
        assert_eq!(&r.from_tag[..], b"54321");
        assert!(r.early_only);
        let r = Replaces::parse(b"abc;FROM-TAG=2;To-Tag=1;x=y").unwrap();
        assert_eq!((&r.to_tag[..], &r.from_tag[..]), (&b"1"[..], &b"2"[..]));
        assert!(!r.early_only);
        // Both tags are required, and a Call-ID.
        assert_eq!(Replaces::parse(b"abc;to-tag=1"), None);
        assert_eq!(Replaces::parse(b"abc;to-tag=;from-tag=2"), None);
        assert_eq!(Replaces::parse(b";to-tag=1;from-tag=2"), None);
    }

    #[test]
    fn a_refer_to_uri_carries_it_escaped_among_its_headers() {
        let uri = |s: &str| Uri::parse(&Bytes::copy_from_slice(s.as_bytes())).unwrap();
        let r = Replaces::in_uri(&uri(
            "sip:1003@pbx.example?Subject=x&replaces=a1%40host%3Bto-tag%3D7%3Bfrom-tag%3D8",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(&r.call_id[..], b"a1@host");
        assert_eq!((&r.to_tag[..], &r.from_tag[..]), (&b"7"[..], &b"8"[..]));
        assert_eq!(Replaces::in_uri(&uri("sip:1003@pbx.example")), None);
        assert_eq!(
            Replaces::in_uri(&uri("sip:1003@pbx.example?Subject=x")),
            None
        );
        assert_eq!(
            Replaces::in_uri(&uri("sip:1003@pbx.example?Replaces=a1%3Bto-tag%3D7")),
            Some(None)
        );
    }
}
