//! The one reader of RTP headers (RFC 3550 §5.1) in the crate: the design's `rtp-rs`
//! reader, so CSRCs, a header extension and padding are never taken for payload by any
//! path (relay transcoding, key events, recording, in-band keys).
//!
//! Reads only; owns nothing.

use std::ops::Range;

/// What the media paths need of one packet's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// RTP timestamp.
    pub ts: u32,
    /// Where the payload lies in the packet: after CSRCs and extension, before padding.
    pub payload: Range<usize>,
}

/// The header of `pkt`, or `None` if it is no well-formed RTP version 2 packet (too
/// short, truncated headers, padding longer than what follows them).
pub fn read(pkt: &[u8]) -> Option<Header> {
    let r = rtp_rs::RtpReader::new(pkt).ok()?;
    let start = r.payload_offset();
    let len = r.payload().len();
    Some(Header {
        pt: r.payload_type(),
        marker: r.mark(),
        ts: r.timestamp(),
        payload: start..start + len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet with 2 CSRCs, a one-word extension, 3 payload bytes and 5 of padding.
    fn everything() -> Vec<u8> {
        let mut p = vec![
            0x80 | 0x20 | 0x10 | 2,
            0x80 | 8,
            0,
            1,
            0,
            0,
            0,
            160,
            1,
            2,
            3,
            4,
        ];
        p.extend([9; 8]); // CSRCs
        p.extend([0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension header, one word
        p.extend([0x55, 0x56, 0x57]); // payload
        p.extend([0, 0, 0, 0, 5]); // padding, its count last
        p
    }

    #[test]
    fn payload_excludes_csrcs_extension_and_padding() {
        let p = everything();
        let h = read(&p).unwrap();
        assert_eq!((h.pt, h.marker, h.ts), (8, true, 160));
        assert_eq!(&p[h.payload], &[0x55, 0x56, 0x57]);
        // Plain: the payload is all after the 12 bytes.
        let plain = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFE];
        let h = read(&plain).unwrap();
        assert_eq!((h.pt, h.marker, h.payload), (0, false, 12..14));
    }

    #[test]
    fn malformed_packets_are_refused() {
        let p = everything();
        assert!(read(&p[..11]).is_none(), "shorter than a header");
        assert!(read(&p[..24]).is_none(), "the extension cut off");
        let mut v1 = p.clone();
        v1[0] = (v1[0] & 0x3f) | 0x40;
        assert!(read(&v1).is_none(), "version 1");
        let mut pad = p.clone();
        *pad.last_mut().unwrap() = 200;
        assert!(read(&pad).is_none(), "more padding than bytes");
    }
}
