//! A call's story: what happened to it, in order (started, dialled, queued, offered,
//! answered, bridged, held, resumed, ended and by whom), each event with its time. The
//! CDR row is a projection of the story ([`Story::cdr`]), so the two can never disagree;
//! the store keeps both (tables `cdr` and `call_events`, schema in [`crate::cdr`]), and
//! reports and the event stream read the events.
//!
//! The call layer tells the story as the call goes; this module only keeps it and
//! projects it. Times are Unix milliseconds from the driver's clock, as in the CDR.

use serde::{Deserialize, Serialize};

use crate::cdr::{Cdr, Disposition, HangupBy};

/// Who a call is, as it began: what every event of it shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// SIP Call-ID of the caller's leg (one made up by switchboard for a call it places).
    pub sip_call_id: String,
    /// Calling number (the authenticated extension, or the trunk's caller ID; the
    /// customer's, for a callback).
    pub caller: String,
    /// Number dialled (`callback` for a callback).
    pub callee: String,
    /// The DID, for calls from a trunk.
    pub did: Option<String>,
    /// The trunk it came in on (a callback's: the one its customer is called through).
    pub trunk: Option<String>,
    /// For a callback: the SIP Call-ID of the call that asked for it (its `cdr` row has
    /// it as `sip_call_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_of: Option<String>,
}

/// A party of a call, as events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// Who called (a callback's customer).
    Caller,
    /// Who a dial or a queue reached.
    Callee,
}

/// One thing that happened to a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The call began. (Boxed: every event of a live call is as large as the largest
    /// kind, and a call keeps its start apart from its events anyway.)
    Started(Box<Start>),
    /// A number is rung for it: an extension (all its phones) or an outside number.
    Dialled {
        /// The extension or outside number.
        number: String,
        /// The trunk an outside number is rung through.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trunk: Option<String>,
    },
    /// The dial rang out or was refused.
    DialFailed {
        /// What the dialplan reads in `$status` (`busy`, `noanswer`, ...).
        status: String,
    },
    /// The caller joined an ACD queue.
    Queued {
        /// The queue's name.
        queue: String,
    },
    /// The queue offered the caller to an agent (its phone rings).
    Offered {
        /// The agent's name or ID, as the queue log has it.
        agent: String,
    },
    /// The caller has its answer: from switchboard (a menu, a queue) or relayed from
    /// the callee; for a callback, the customer picked up.
    Answered,
    /// A callee answered and its audio is bridged with the caller's.
    Bridged {
        /// The number dialled that answered.
        party: String,
    },
    /// A party was put on hold by the other and hears music.
    Held {
        /// Who is on hold.
        party: Party,
    },
    /// A party is off hold.
    Resumed {
        /// Who was on hold.
        party: Party,
    },
    /// A party sent the other elsewhere and left the call. Blind: the other's dialplan
    /// started again at `to`. Attended: the transferor had called `to` itself first, and
    /// the party it reached there took the transferor's place in this call (or this
    /// call's party took its place in that one).
    Transferred {
        /// Who transferred.
        by: Party,
        /// The number the other party was sent to.
        to: String,
        /// Whether the transferor spoke to `to` first (REFER with Replaces).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        attended: bool,
    },
    /// The extension dialled forwarded the call (do-not-disturb's busy aside), and its
    /// dialplan started again at the forward's number.
    Forwarded {
        /// The extension that forwards.
        from: String,
        /// Where to.
        to: String,
        /// `all`, `busy` or `noanswer`.
        why: ForwardWhy,
    },
    /// The caller was parked in a slot (any phone may dial it to take the call).
    Parked {
        /// The slot.
        slot: String,
    },
    /// Someone dialled the slot the caller was parked in, and is its callee now.
    Retrieved {
        /// The slot.
        slot: String,
        /// Who took the call.
        by: String,
    },
    /// A call ringing at `at` was answered by `by` (call pickup): told in the call
    /// picked up and in the picker's own, which ends.
    PickedUp {
        /// The extension it was ringing at.
        at: String,
        /// The extension that took it.
        by: String,
    },
    /// A party's dialog was taken over by a new one from another of its phones (an
    /// INVITE with Replaces): the call goes on with that phone.
    Replaced {
        /// Whose dialog.
        party: Party,
    },
    /// The call is over.
    Ended {
        /// How, from the caller's point of view.
        disposition: Disposition,
        /// The SIP status that ended it.
        sip_code: u16,
        /// Who ended it.
        by: HangupBy,
    },
}

/// Why a call was forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardWhy {
    /// The extension forwards every call.
    All,
    /// It refused the call as busy.
    Busy,
    /// It did not answer in time, or no phone of it is registered.
    NoAnswer,
}

impl ForwardWhy {
    /// As the dialplan's codes and the story name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Busy => "busy",
            Self::NoAnswer => "noanswer",
        }
    }
}

impl Event {
    /// Whether it moved the call between parties or places (a transfer, a forward, a
    /// park, a retrieval, a pickup, a phone taking over): what `ctl calls` shows of a
    /// live call's story.
    pub fn is_move(&self) -> bool {
        matches!(
            self,
            Self::Transferred { .. }
                | Self::Forwarded { .. }
                | Self::Parked { .. }
                | Self::Retrieved { .. }
                | Self::PickedUp { .. }
                | Self::Replaced { .. }
        )
    }

    /// The event in a few words, for a person reading `ctl calls`.
    pub fn line(&self) -> String {
        let party = |p: &Party| match p {
            Party::Caller => "caller",
            Party::Callee => "callee",
        };
        match self {
            Self::Transferred { by, to, attended } => format!(
                "transferred to {to} by the {}{}",
                party(by),
                if *attended { ", attended" } else { "" }
            ),
            Self::Forwarded { from, to, why } => {
                format!("forwarded by {from} to {to} ({})", why.as_str())
            }
            Self::Parked { slot } => format!("parked at {slot}"),
            Self::Retrieved { slot, by } => format!("retrieved from {slot} by {by}"),
            Self::PickedUp { at, by } => format!("ringing at {at}, picked up by {by}"),
            Self::Replaced { party: p } => format!("the {}'s phone replaced", party(p)),
            other => other.name().to_string(),
        }
    }

    /// The event's name, as the `call_events` table stores it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started(_) => "started",
            Self::Dialled { .. } => "dialled",
            Self::DialFailed { .. } => "dial_failed",
            Self::Queued { .. } => "queued",
            Self::Offered { .. } => "offered",
            Self::Answered => "answered",
            Self::Bridged { .. } => "bridged",
            Self::Held { .. } => "held",
            Self::Resumed { .. } => "resumed",
            Self::Transferred { .. } => "transferred",
            Self::Replaced { .. } => "replaced",
            Self::Parked { .. } => "parked",
            Self::Forwarded { .. } => "forwarded",
            Self::PickedUp { .. } => "picked_up",
            Self::Retrieved { .. } => "retrieved",
            Self::Ended { .. } => "ended",
        }
    }
}

/// One event of call `call`, the `seq`th of its story (0 is `Started`), at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// switchboard's call id.
    pub call: u64,
    /// Its place in the story.
    pub seq: u32,
    /// When (Unix ms).
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A live call's story so far.
#[derive(Clone, Debug)]
pub struct Story {
    call: u64,
    start: Start,
    start_ms: u64,
    /// Everything after the start, in order.
    events: Vec<(u64, Event)>,
}

impl Story {
    /// Call `call` began at `at_ms` as `start`.
    pub fn begin(call: u64, start: Start, at_ms: u64) -> Self {
        Self {
            call,
            start,
            start_ms: at_ms,
            // Room for a queue call's story without growing (answered, queued, offered,
            // dialled, bridged, ended): a live call's memory is mostly this.
            events: Vec::with_capacity(6),
        }
    }

    /// The call as it began.
    pub fn start(&self) -> &Start {
        &self.start
    }

    /// `event` happened at `at_ms`.
    pub fn tell(&mut self, at_ms: u64, event: Event) {
        self.events.push((at_ms, event));
    }

    /// The trunk the call uses: the last it dialled out through, else the one it came in
    /// on.
    pub fn trunk(&self) -> Option<&str> {
        self.events
            .iter()
            .rev()
            .find_map(|(_, e)| match e {
                Event::Dialled { trunk, .. } => trunk.as_deref(),
                _ => None,
            })
            .or(self.start.trunk.as_deref())
    }

    /// Whether the caller has had its answer (`Answered` was told).
    pub fn answered(&self) -> bool {
        self.events.iter().any(|(_, e)| *e == Event::Answered)
    }

    /// The number of the last `Dialled`, if the call dialled.
    pub fn last_dialled(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|(_, e)| match e {
            Event::Dialled { number, .. } => Some(number.as_str()),
            _ => None,
        })
    }

    /// The trunk of the last `Dialled`, if it went out through one.
    pub fn last_trunk(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|(_, e)| match e {
            Event::Dialled { trunk, .. } => Some(trunk.as_deref()),
            _ => None,
        })?
    }

    /// The call's record: who from the start; the trunk it came in on, else the last it
    /// dialled out through; answered when the caller first was; how, when and by whom
    /// it ended from `Ended` (failed at its last event, by the system, if it has none).
    pub fn cdr(&self) -> Cdr {
        let answer_ms = self
            .events
            .iter()
            .find(|(_, e)| *e == Event::Answered)
            .map(|(t, _)| *t);
        let last_ms = self.events.last().map_or(self.start_ms, |(t, _)| *t);
        let ended = self.events.iter().rev().find_map(|(t, e)| match e {
            Event::Ended {
                disposition,
                sip_code,
                by,
            } => Some((*t, *disposition, *sip_code, *by)),
            _ => None,
        });
        let (end_ms, disposition, sip_code, hangup_by) =
            ended.unwrap_or((last_ms, Disposition::Failed, 0, HangupBy::System));
        Cdr {
            call: self.call,
            sip_call_id: self.start.sip_call_id.clone(),
            caller: self.start.caller.clone(),
            callee: self.start.callee.clone(),
            did: self.start.did.clone(),
            trunk: self.trunk().map(str::to_string),
            start_ms: self.start_ms,
            answer_ms,
            end_ms,
            disposition,
            sip_code,
            hangup_by,
        }
    }

    /// Its moves so far (see [`Event::is_move`]), in order.
    pub fn moves(&self) -> Vec<Event> {
        self.events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.is_move())
            .cloned()
            .collect()
    }

    /// The whole story as rows, `Started` first.
    pub fn events(&self) -> Vec<CallEvent> {
        let started = (self.start_ms, Event::Started(Box::new(self.start.clone())));
        std::iter::once(&started)
            .chain(self.events.iter())
            .zip(0u32..)
            .map(|((at_ms, event), seq)| CallEvent {
                call: self.call,
                seq,
                at_ms: *at_ms,
                event: event.clone(),
            })
            .collect()
    }

    /// The finished call: its record and its story.
    pub fn record(&self) -> CallRecord {
        CallRecord {
            cdr: self.cdr(),
            events: self.events(),
        }
    }
}

/// A finished call as the store keeps it: the CDR row and the events it projects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The row.
    #[serde(flatten)]
    pub cdr: Cdr,
    /// Its story, `Started` first (empty in a record kept by an older release).
    #[serde(default)]
    pub events: Vec<CallEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(trunk: Option<&str>) -> Start {
        Start {
            sip_call_id: "abc@pbx".into(),
            caller: "1001".into(),
            callee: "1002".into(),
            did: None,
            trunk: trunk.map(str::to_string),
            callback_of: None,
        }
    }

    #[test]
    fn the_record_is_the_storys_projection() {
        let mut s = Story::begin(7, start(None), 1_000);
        s.tell(
            1_010,
            Event::Dialled {
                number: "0441234567".into(),
                trunk: Some("carrier".into()),
            },
        );
        s.tell(
            2_000,
            Event::Dialled {
                number: "0447654321".into(),
                trunk: Some("backup".into()),
            },
        );
        s.tell(3_500, Event::Answered);
        s.tell(
            3_500,
            Event::Bridged {
                party: "0447654321".into(),
            },
        );
        s.tell(
            5_000,
            Event::Held {
                party: Party::Caller,
            },
        );
        // A later answer (a re-INVITE's) is not the call's answer.
        s.tell(6_000, Event::Answered);
        s.tell(
            9_000,
            Event::Ended {
                disposition: Disposition::Answered,
                sip_code: 200,
                by: HangupBy::Callee,
            },
        );
        let c = s.cdr();
        assert_eq!(c.call, 7);
        assert_eq!(c.trunk.as_deref(), Some("backup"), "the last trunk dialled");
        assert_eq!(
            (c.start_ms, c.answer_ms, c.end_ms),
            (1_000, Some(3_500), 9_000)
        );
        assert_eq!(
            (c.disposition, c.sip_code, c.hangup_by),
            (Disposition::Answered, 200, HangupBy::Callee)
        );
        assert_eq!(s.last_dialled(), Some("0447654321"));
        let rows = s.events();
        assert_eq!(rows.len(), 8);
        assert_eq!(rows[0].event, Event::Started(Box::new(start(None))));
        // A live call's events stay small, whatever a start holds.
        assert!(
            std::mem::size_of::<Event>() <= 64,
            "{}",
            std::mem::size_of::<Event>()
        );
        assert_eq!(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert!(rows.iter().all(|r| r.call == 7));
        assert_eq!(rows[7].at_ms, 9_000);
    }

    #[test]
    fn a_call_with_no_end_yet_projects_as_failed_by_the_system_at_its_last_event() {
        let mut s = Story::begin(1, start(Some("carrier")), 1_000);
        assert_eq!(s.cdr().end_ms, 1_000);
        s.tell(
            1_500,
            Event::Queued {
                queue: "sales".into(),
            },
        );
        let c = s.cdr();
        assert_eq!(
            c.trunk.as_deref(),
            Some("carrier"),
            "the trunk it came in on"
        );
        assert_eq!(c.answer_ms, None);
        assert_eq!(
            (c.end_ms, c.disposition, c.sip_code, c.hangup_by),
            (1_500, Disposition::Failed, 0, HangupBy::System)
        );
    }

    #[test]
    fn events_keep_their_names_and_fields_in_json() {
        let e = CallEvent {
            call: 3,
            seq: 2,
            at_ms: 10,
            event: Event::Held {
                party: Party::Callee,
            },
        };
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"call":3,"seq":2,"at_ms":10,"event":"held","party":"callee"}"#
        );
        assert_eq!(serde_json::from_str::<CallEvent>(&j).unwrap(), e);
        assert_eq!(e.event.name(), "held");
        // A record kept before stories were stored still reads.
        let old = r#"{"call":1,"sip_call_id":"x","caller":"1","callee":"2","did":null,"trunk":null,
            "start_ms":0,"answer_ms":null,"end_ms":0,"disposition":"failed","sip_code":503,
            "hangup_by":"system"}"#;
        let r: CallRecord = serde_json::from_str(old).unwrap();
        assert!(r.events.is_empty());
        assert_eq!(r.cdr.sip_code, 503);
    }
}
