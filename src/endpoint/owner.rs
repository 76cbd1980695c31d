//! Who each of our client transactions belongs to. A response or a timeout goes to the one
//! owner its key names, instead of being offered to every part of the endpoint in turn.
//!
//! Owns the key → owner map only; what an owner does with its response is its own module's
//! business (calls, trunk registration, message-waiting notifications).

use super::call::state::CallId;
use std::collections::HashMap;

use super::call::state::Detached;
use crate::sip::transaction::TxKey;

/// The owner of one client transaction.
pub(super) enum TxOwner {
    /// A request a call sent, and which one it is.
    Call(CallId, CallTx),
    /// The INVITE of a B leg given up on, still watched so that a late answer is ACKed
    /// and hung up.
    Detached(Box<Detached>),
    /// A REGISTER to trunk number `.0`.
    TrunkReg(usize),
    /// A NOTIFY of message-waiting subscription `.0`.
    Notify(u64),
}

/// What a call's client transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CallTx {
    /// An INVITE ringing one of the callee's devices (the answered one included).
    Branch,
    /// The INVITE to a callback's customer.
    Customer,
    /// A re-INVITE or UPDATE relayed from the other leg.
    Reoffer,
    /// A BYE.
    Bye,
    /// A PRACK of a device's reliable provisional.
    Prack,
    /// A NOTIFY of a transfer's outcome to the transferor.
    Notify,
    /// A re-INVITE of ours taking the party on this leg off hold (after a transfer
    /// moved it away from the party that held it).
    Unhold(super::call::state::LegId),
    /// A re-INVITE of ours repeating what the party on this leg agreed, to learn it is
    /// still there.
    Refresh(super::call::state::LegId),
}

/// Every client transaction of ours with an owner.
#[derive(Default)]
pub(super) struct Owners(HashMap<TxKey, TxOwner>);

impl Owners {
    /// Client transactions with an owner now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn insert(&mut self, key: TxKey, owner: TxOwner) {
        self.0.insert(key, owner);
    }

    pub(super) fn get(&self, key: &TxKey) -> Option<&TxOwner> {
        self.0.get(key)
    }

    pub(super) fn remove(&mut self, key: &TxKey) -> Option<TxOwner> {
        self.0.remove(key)
    }

    /// The call a transaction belongs to, and what it is there.
    pub(super) fn call(&self, key: &TxKey) -> Option<(CallId, CallTx)> {
        match self.0.get(key)? {
            TxOwner::Call(id, role) => Some((*id, *role)),
            _ => None,
        }
    }

    /// Takes a detached leg's INVITE out, leaving any other owner where it is.
    pub(super) fn take_detached(&mut self, key: &TxKey) -> Option<Detached> {
        if !matches!(self.0.get(key), Some(TxOwner::Detached(_))) {
            return None;
        }
        match self.0.remove(key) {
            Some(TxOwner::Detached(d)) => Some(*d),
            _ => None,
        }
    }

    /// Forgets a call's transaction (and nothing else's).
    pub(super) fn forget_call_tx(&mut self, key: &TxKey) {
        if matches!(self.0.get(key), Some(TxOwner::Call(..))) {
            self.0.remove(key);
        }
    }
}
