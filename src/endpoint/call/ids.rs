//! The call layer's ids: a call's number and a leg's place in the leg table. A leaf
//! module: every other part of the call imports its ids from here (through `state`), and
//! it imports nothing of theirs.

/// switchboard's own number for a call: the key of the call table, the relay session's
/// id, the ACD's caller id and the CDR's `call`. Never a SIP Call-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(in crate::endpoint) struct CallId(pub(in crate::endpoint) u64);

impl CallId {
    /// The call whose media a relay session carries.
    pub(in crate::endpoint) fn of(s: crate::media::SessionId) -> Self {
        Self(s.0)
    }

    /// The relay session that carries this call's media.
    pub(in crate::endpoint) fn session(self) -> crate::media::SessionId {
        crate::media::SessionId(self.0)
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A leg's place in the leg table ([`super::leg::Legs`]). The generation makes an id kept past its leg's
/// end (in a transaction's owner, a late event) find nothing, never a newer leg that took
/// the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(in crate::endpoint) struct LegId {
    pub(super) idx: u32,
    pub(super) gen: u32,
}
