//! A dialog as one side of it sees it (RFC 3261 §12): Call-ID, tags, the From/To values,
//! the remote target and route set, our CSeq, where requests go, and the SDP we last sent
//! in it (RFC 3264 versions). Built from the request that starts it; pure data, no IO.

use bytes::Bytes;

use super::header;
use super::msg::{HeaderName, Message};
use super::transaction::Peer;
use super::uri::Uri;

/// One dialog as seen from our side.
#[derive(Clone, Debug)]
pub struct Dialog {
    /// The dialog's Call-ID.
    pub call_id: Bytes,
    /// Our tag.
    pub local_tag: Bytes,
    /// Our From/To value, with our tag.
    pub local_hdr: Bytes,
    /// The peer's From/To value (with its tag once known).
    pub remote_hdr: Bytes,
    /// The peer's tag, once it has given one.
    pub remote_tag: Option<Bytes>,
    /// Where in-dialog requests go (the peer's Contact).
    pub target: Uri,
    /// Route headers for in-dialog requests.
    pub routes: Vec<Bytes>,
    /// Our last CSeq in this dialog.
    pub cseq: u32,
    /// Transport address for requests in this dialog.
    pub peer: Peer,
    /// The SDP we last sent in this dialog (repeated to a session refresh).
    pub sdp_sent: Option<Bytes>,
    /// Its `o=` version; each changed description sent in the dialog is one higher (RFC 3264 §8).
    pub sdp_version: u64,
}

/// The URI inside a Contact (first value), if any.
pub fn contact_uri(m: &Message) -> Option<Uri> {
    let v = m.header(&HeaderName::Contact)?;
    match header::parse_contact_list(v).ok()?.into_iter().next()? {
        header::Contact::Addr(na) => Some(na.uri),
        header::Contact::Star => None,
    }
}

/// The route set a message's Record-Route headers give (RFC 3261 §12.1): in order for the
/// UAS side, reversed for the UAC side.
pub fn route_set(m: &Message, reverse: bool) -> Vec<Bytes> {
    let mut v: Vec<Bytes> = m
        .headers_named(&HeaderName::RecordRoute)
        .flat_map(|h| header::split_list(h).unwrap_or_default())
        .collect();
    if reverse {
        v.reverse();
    }
    v
}

/// Our side of a dialog a request from `peer` starts, with our tag `local_tag`.
pub fn uas_dialog(msg: &Message, peer: &Peer, local_tag: Bytes) -> Dialog {
    let to = msg.header(&HeaderName::To).cloned().unwrap_or_default();
    Dialog {
        call_id: msg.call_id().cloned().unwrap_or_default(),
        local_hdr: with_tag(&to, &local_tag),
        local_tag,
        remote_hdr: msg.header(&HeaderName::From).cloned().unwrap_or_default(),
        remote_tag: msg.from_hdr().ok().and_then(|f| f.tag().cloned()),
        target: contact_uri(msg).unwrap_or_else(|| Uri::sip(None, &peer.addr.to_string(), None)),
        routes: route_set(msg, false),
        cseq: 0,
        peer: peer.clone(),
        sdp_sent: None,
        sdp_version: 1,
    }
}

/// Appends `;tag=` to a From/To value.
pub fn with_tag(v: &Bytes, tag: &Bytes) -> Bytes {
    let mut out = v.to_vec();
    out.extend_from_slice(b";tag=");
    out.extend_from_slice(tag);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::parse::{parse_datagram, Limits};

    #[test]
    fn the_route_set_keeps_record_route_order_for_the_uas_and_reverses_it_for_the_uac() {
        let m = parse_datagram(
            Bytes::from_static(
                b"INVITE sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKr\r\n\
Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\n\
From: <sip:1001@pbx>;tag=a\r\nTo: <sip:1002@pbx>\r\nCall-ID: r\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:1001@127.0.0.1:5070>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            ),
            &Limits::default(),
        )
        .unwrap();
        let uas: Vec<&[u8]> = vec![b"<sip:p1;lr>", b"<sip:p2;lr>", b"<sip:p3;lr>"];
        assert_eq!(route_set(&m, false), uas);
        let mut uac = uas.clone();
        uac.reverse();
        assert_eq!(route_set(&m, true), uac);
        let peer = Peer {
            transport: crate::sip::header::Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
        };
        let d = uas_dialog(&m, &peer, Bytes::from_static(b"us"));
        assert_eq!(d.routes, uas);
        assert_eq!(d.target.as_bytes(), &b"sip:1001@127.0.0.1:5070"[..]);
        assert_eq!(&d.local_hdr[..], b"<sip:1002@pbx>;tag=us");
        assert_eq!(d.remote_tag.as_deref(), Some(&b"a"[..]));
    }
}
