//! Blind transfer (RFC 3515 REFER): a party of a bridged call (an agent, an extension
//! that called or took a call) sends the other party elsewhere. The transferee's leg
//! stays as it is: its dialog, its media leg and its port do not change, so its phone
//! sees no SIP at all. The transferor's leg leaves the call (told the transfer is done,
//! then hung up); the transferee becomes the call's caller if it was not, and a dialplan
//! starts for it at the target in the transferor's context, so the target's own rules (no
//! answer, voicemail, a queue) apply and the transferee hears ringback or music
//! meanwhile, never silence.
//!
//! Owns only the move; dialling, queues and media are the other files' (reached through
//! the dialplan and the media emitter). What it cannot carry out yet it refuses with a
//! status that says so, and the call goes on as it was.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::state::{CallId, CallTimer, Controller, Leaving, LegId, QueueCall, Role, State};
use crate::dialplan::{Cursor, Dialplan};
use crate::endpoint::owner::{CallTx, TxOwner};
use crate::endpoint::{code, Endpoint};
use crate::sip::header::parse_name_addr;
use crate::sip::msg::{HeaderName, Message, Method};
use crate::sip::replaces::Replaces;
use crate::sip::transaction::TxKey;
use crate::story::{Event, Party};

/// Why a REFER is refused: its status and a few words for the Warning header.
pub(super) struct Refusal(pub(super) u16, pub(super) &'static str);

/// What a REFER asks for.
enum Target {
    /// Send the other party to this number (blind).
    Blind(String, Party),
    /// Join the other party with the transferor's party in the dialog named (attended).
    Attended(Replaces),
}

/// How a blind transferor leaves its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parting {
    /// Hung up on at once: its phone asked by REFER, and is told by NOTIFY it is done.
    Now,
    /// Kept until it has heard the slot, if the party it sent away was parked, then hung
    /// up on: a feature code's transferor, whose phone knows nothing of the transfer.
    AfterSlot,
    /// Gone already: it hung up itself (its BYE answered).
    Gone,
}

impl Endpoint {
    /// A REFER on `leg` of call `id`.
    pub(super) fn on_refer(
        &mut self,
        now: Instant,
        key: &TxKey,
        msg: &Message,
        id: CallId,
        leg: LegId,
    ) {
        let (target, by) = match self.transfer_target(id, leg, msg) {
            Ok(Target::Blind(target, by)) => (target, by),
            Ok(Target::Attended(replaces)) => {
                return match self.attended_transfer(now, key, msg, id, leg, &replaces) {
                    Ok(()) => {}
                    Err(r) => self.refuse_transfer(now, key, msg, id, r),
                };
            }
            Err(r) => return self.refuse_transfer(now, key, msg, id, r),
        };
        let (plan, cursor) = match self.transfer_cursor(id, by, &target) {
            Ok(p) => p,
            Err(r) => return self.refuse_transfer(now, key, msg, id, r),
        };
        self.reply(now, key, msg, code(202), vec![]);
        tracing::info!(call = %id, %target, "blind transfer");
        // The transfer is ours to carry out from here: the transferor is told it is done.
        self.notify_transfer(now, id, leg);
        self.carry_out_blind(now, id, leg, by, target, plan, cursor, Parting::Now);
    }

    /// Where the dialplan starts for the party of call `id` that `by` sends to `target`,
    /// with the transferor's dial permissions (an extension's context); refused if that
    /// context has no route there.
    pub(super) fn transfer_cursor(
        &self,
        id: CallId,
        by: Party,
        target: &str,
    ) -> Result<(Arc<Dialplan>, Cursor), Refusal> {
        let c = self
            .calls
            .calls
            .get(&id)
            .ok_or(Refusal(481, "no such call"))?;
        // Who the transferee is, as the dialplan's `$caller` reads it.
        let caller = match by {
            Party::Callee => c.caller_number().to_string(),
            Party::Caller => c
                .b_ext
                .clone()
                .or_else(|| c.story.last_dialled().map(str::to_string))
                .unwrap_or_default(),
        };
        let plan = self.dialplan.clone();
        let mut cursor = plan
            .start(&self.default_context, target, &caller)
            .ok_or(Refusal(403, "no route to the target for the transferor"))?;
        // Who sent the party here: a dialplan may ring them back when the target does
        // not answer.
        let transferor = match by {
            Party::Callee => c.b_ext.clone(),
            Party::Caller => Some(c.caller_number().to_string()),
        };
        cursor
            .vars
            .insert("transferred_by".into(), transferor.unwrap_or_default());
        Ok((plan, cursor))
    }

    /// Carries out a blind transfer of call `id` by the party on `leg` (`by`) to
    /// `target`, whose dialplan starts at `cursor`: the transferor leaves (hung up on as
    /// `parting` says), and the other party runs the dialplan from there.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn carry_out_blind(
        &mut self,
        now: Instant,
        id: CallId,
        leg: LegId,
        by: Party,
        target: String,
        plan: Arc<Dialplan>,
        cursor: Cursor,
        parting: Parting,
    ) {
        if parting == Parting::Now {
            self.send_bye(now, leg);
        }
        self.transferor_leaves(now, id, leg, by, &target, parting);
        self.tell(
            now,
            id,
            Event::Transferred {
                by,
                to: target,
                attended: false,
            },
        );
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.plan = plan;
        c.cursor = cursor;
        c.state = State::Routing;
        c.failures.clear();
        self.run_dialplan(now, id);
        if parting == Parting::AfterSlot {
            self.tell_the_slot(now, id);
        }
    }

    /// Answers a REFER we do not carry out: its status, and a Warning saying why.
    fn refuse_transfer(
        &mut self,
        now: Instant,
        key: &TxKey,
        msg: &Message,
        id: CallId,
        r: Refusal,
    ) {
        let Refusal(status, why) = r;
        tracing::info!(call = %id, status, why, "transfer refused");
        let warn = Bytes::from(format!("399 switchboard \"{why}\""));
        let extra = vec![(HeaderName::Other(Bytes::from_static(b"Warning")), warn)];
        self.reply(now, key, msg, code(status), extra);
    }

    /// Whom `leg` asks to transfer its call's other party to, if we carry it out.
    fn transfer_target(&self, id: CallId, leg: LegId, msg: &Message) -> Result<Target, Refusal> {
        let refer_to = msg
            .header(&HeaderName::Other(Bytes::from_static(b"Refer-To")))
            .and_then(|v| parse_name_addr(v).ok())
            .ok_or(Refusal(400, "Refer-To missing or unreadable"))?;
        if refer_to
            .uri
            .param("method")
            .is_some_and(|m| m.is_some_and(|m| !m.eq_ignore_ascii_case(b"INVITE")))
        {
            return Err(Refusal(501, "only transfers by INVITE are carried out"));
        }
        let replaces = match Replaces::in_uri(&refer_to.uri) {
            Some(Some(r)) => Some(r),
            Some(None) => return Err(Refusal(400, "Replaces unreadable")),
            None => None,
        };
        // An attended transfer's Refer-To is where the replaced dialog's requests go
        // (our own Contact, in that dialog): the number is the party reached there.
        let target = refer_to.uri.user_decoded().filter(|t| !t.is_empty());
        let target = match (&replaces, target) {
            (Some(_), _) => None,
            (None, Some(t)) => Some(t),
            (None, None) => return Err(Refusal(400, "Refer-To names no number")),
        };
        let by = self.transferor_party(id, leg)?;
        Ok(match (replaces, target) {
            (Some(r), _) => Target::Attended(r),
            (None, t) => Target::Blind(t.unwrap_or_default(), by),
        })
    }

    /// Which party of call `id` the phone on `leg` is, if it may send the other one
    /// elsewhere: an extension of ours talking to someone (a queue caller's agent
    /// transfers it, not the caller).
    pub(super) fn transferor_party(&self, id: CallId, leg: LegId) -> Result<Party, Refusal> {
        let c = self
            .calls
            .calls
            .get(&id)
            .ok_or(Refusal(481, "no such call"))?;
        let by = match c.role(leg) {
            Some(Role::Callee) if c.caller().is_some() => Party::Callee,
            Some(Role::Caller) if c.callee().is_some() => Party::Caller,
            _ => return Err(Refusal(403, "nobody to transfer")),
        };
        if c.callback.is_some() {
            return Err(Refusal(501, "a callback cannot be transferred yet"));
        }
        // Only a phone of ours may send a party elsewhere: a far end reached through or
        // calling from a trunk is nobody we trust with our dial permissions.
        let extension = match by {
            Party::Callee => c.b_ext.is_some(),
            Party::Caller => c.from_trunk.is_none(),
        };
        if !extension {
            return Err(Refusal(403, "only an extension may transfer"));
        }
        if by == Party::Caller && c.queue.is_some() {
            return Err(Refusal(403, "a queue call is transferred by its agent"));
        }
        Ok(by)
    }

    /// Tells the transferor on `leg` that its transfer is done (RFC 3515 §2.4.5: a
    /// sipfrag of the final status), ending the REFER's implicit subscription.
    pub(super) fn notify_transfer(&mut self, now: Instant, id: CallId, leg: LegId) {
        let Some(l) = self.calls.legs.get_mut(leg) else {
            return;
        };
        l.dialog.cseq += 1;
        let (dialog, cseq) = (l.dialog.clone(), l.dialog.cseq);
        let mut notify = self.leg_request(Method::Notify, &dialog, cseq);
        let other = |n: &'static [u8]| HeaderName::Other(Bytes::from_static(n));
        notify.push_header(HeaderName::Event, Bytes::from_static(b"refer"));
        notify.push_header(
            other(b"Subscription-State"),
            Bytes::from_static(b"terminated;reason=noresource"),
        );
        notify.push_header(HeaderName::UserAgent, self.server_name.clone());
        notify.push_header(
            HeaderName::ContentType,
            Bytes::from_static(b"message/sipfrag;version=2.0"),
        );
        notify.body = Bytes::from_static(b"SIP/2.0 200 OK\r\n");
        match self.tx.send_request(now, notify, dialog.peer) {
            Ok(k) => self.owners.insert(k, TxOwner::Call(id, CallTx::Notify)),
            Err(e) => tracing::debug!(error = %e, "NOTIFY not sent"),
        }
    }

    /// The transferor's leg leaves call `id` for `to`: out of its bridge and the leg
    /// table, its phone free for the ACD, and an agent's talk over (the queue counts the
    /// call as handled and transferred by them, and the agent goes to wrap-up). A callee left by its caller
    /// becomes the call's caller, its leg driven by the call's script from now on.
    fn transferor_leaves(
        &mut self,
        now: Instant,
        id: CallId,
        leg: LegId,
        by: Party,
        to: &str,
        parting: Parting,
    ) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.legs.retain(|&(l, _)| l != leg);
        c.on_hold = None;
        c.timers.stop(CallTimer::CalleeOkRetransmit);
        c.timers.stop(CallTimer::OkRetransmit);
        let ext = match by {
            Party::Callee => c.b_ext.take(),
            Party::Caller => {
                // The callee is the caller now, as itself: an extension, or a number
                // on the trunk it was reached through (which keeps it from our
                // extensions' powers and from a second trunk, as any trunk caller).
                let transferor = c.caller_number().to_string();
                match c.b_ext.take() {
                    Some(ext) => c.caller_id = Some(ext),
                    None => {
                        c.caller_id = c.story.last_dialled().map(str::to_string);
                        c.from_trunk = c.story.last_trunk().map(str::to_string);
                    }
                }
                c.privacy = false;
                for (_, role) in &mut c.legs {
                    *role = Role::Caller;
                }
                Some(transferor)
            }
        };
        let transferee = c.caller();
        if let Some(ext) = &ext {
            if let Some(i) = c.devices.iter().position(|d| d == ext) {
                c.devices.remove(i);
            }
        }
        let queue = c.queue.take();
        self.calls.close_bridge(id);
        if let Some(l) = transferee.and_then(|t| self.calls.legs.get_mut(t)) {
            l.controller = Controller::Script;
        }
        if parting == Parting::AfterSlot {
            // Answered long ago, its INVITE is nobody's to cancel; the leg stays until
            // it has heard what it is told.
            let invite = self.calls.legs.get(leg).map(|l| l.invite_key.clone());
            if let Some(invite) = invite {
                self.calls.by_a_invite.remove(&invite);
            }
            if let Some(c) = self.calls.calls.get_mut(&id) {
                c.leaving = Some(Leaving {
                    leg,
                    prompts: VecDeque::new(),
                });
            }
        } else if let Some(l) = self.calls.remove_leg(leg) {
            // The caller's INVITE, indexed for its CANCEL, goes with it.
            self.calls.by_a_invite.remove(&l.invite_key);
        }
        self.transferor_done(now, id, ext, queue, to);
    }

    /// A transferor on extension `ext` is done with call `id`: its phone is free for
    /// the ACD, and if the call came through a queue (`queue`, taken off the call), the
    /// agent's talk is over, handled and transferred to `to`.
    pub(super) fn transferor_done(
        &mut self,
        now: Instant,
        id: CallId,
        ext: Option<String>,
        queue: Option<QueueCall>,
        to: &str,
    ) {
        if let Some(ext) = ext {
            self.device_free(now, &ext);
        }
        if let Some(q) = queue {
            match q.agent.clone() {
                Some(agent) => self.acd.handle(
                    now,
                    crate::acd::Event::Transferred {
                        agent,
                        to: to.to_string(),
                    },
                ),
                None => {
                    let acd = self.acd_id(id);
                    self.queue_call_ended(now, acd, q);
                }
            }
        }
    }
}
