//! The call layer's ids: a call's number and a leg's place in the leg table. A leaf
//! module: every other part of the call imports its ids from here (through `state`), and
//! it imports nothing of theirs.

/// switchboard's own number for a call: the key of the call table, the ACD's caller id
/// and the CDR's `call`; its media legs and bridge are numbered after it. Never a SIP
/// Call-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(in crate::endpoint) struct CallId(pub(in crate::endpoint) u64);

impl CallId {
    /// The media leg facing the call's caller (`caller`) or its callee. Derived from the
    /// call's number, so never reused within a run and mapped back without a table;
    /// until legs carry their own media (bridges in the core), a call has these two.
    pub(in crate::endpoint) fn media_leg(self, caller: bool) -> crate::media::LegKey {
        crate::media::LegKey(self.0 << 1 | u64::from(!caller))
    }

    /// The call whose media leg `leg` is, and whether it faces the caller.
    pub(in crate::endpoint) fn of_media_leg(leg: crate::media::LegKey) -> (Self, bool) {
        (Self(leg.0 >> 1), leg.0 & 1 == 0)
    }

    /// The bridge joining the call's two media legs.
    pub(in crate::endpoint) fn bridge(self) -> crate::media::BridgeKey {
        crate::media::BridgeKey(self.0)
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
