//! Call detail records: one per call, whatever happened to it.
//!
//! A [`Cdr`] is the projection of a finished call's story ([`crate::story`]); the
//! driver's store writes both (SQLite, tables `cdr` and `call_events`, schema in
//! [`SCHEMA`] and [`EVENTS_SCHEMA`], brought up to date by [`SCHEMA_VERSION`]). Times are
//! Unix milliseconds taken by the driver's clock, so records stay comparable across
//! restarts.

use serde::{Deserialize, Serialize};

/// How the call ended, from the caller's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The callee answered.
    Answered,
    /// The callee was busy (486/600).
    Busy,
    /// Nobody answered in time (or 480/408).
    NoAnswer,
    /// The caller hung up before an answer.
    Cancelled,
    /// No such number, or nobody registered there.
    Unavailable,
    /// Anything else (errors, 5xx, rejected media).
    Failed,
}

impl Disposition {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Busy => "busy",
            Self::NoAnswer => "noanswer",
            Self::Cancelled => "cancelled",
            Self::Unavailable => "unavailable",
            Self::Failed => "failed",
        }
    }
}

/// Who ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupBy {
    /// The calling party (hung up, cancelled).
    Caller,
    /// The called party.
    Callee,
    /// switchboard: the dialplan, a timeout, an error, a shutdown.
    System,
}

impl HangupBy {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
            Self::System => "system",
        }
    }
}

/// One call's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cdr {
    /// switchboard's own call id (not the SIP Call-ID).
    pub call: u64,
    /// SIP Call-ID of the caller's leg.
    pub sip_call_id: String,
    /// Calling number (the authenticated extension, or the trunk's caller ID).
    pub caller: String,
    /// Number dialled.
    pub callee: String,
    /// The DID, for calls from a trunk.
    pub did: Option<String>,
    /// Trunk name, for calls through a trunk.
    pub trunk: Option<String>,
    /// When the INVITE arrived (Unix ms).
    pub start_ms: u64,
    /// When the callee answered (Unix ms).
    pub answer_ms: Option<u64>,
    /// When the call ended (Unix ms).
    pub end_ms: u64,
    /// How it ended.
    pub disposition: Disposition,
    /// The SIP status that ended it (200 for a normal hang-up after answer).
    pub sip_code: u16,
    /// Who hung up.
    pub hangup_by: HangupBy,
}

impl Cdr {
    /// The record of call `call` starting at `start_ms`, as it stands if nothing more
    /// happens: failed, ended by the system. The call fills in the rest as it goes.
    pub fn begun(
        call: u64,
        sip_call_id: String,
        caller: String,
        callee: String,
        start_ms: u64,
    ) -> Self {
        Self {
            call,
            sip_call_id,
            caller,
            callee,
            did: None,
            trunk: None,
            start_ms,
            answer_ms: None,
            end_ms: 0,
            disposition: Disposition::Failed,
            sip_code: 0,
            hangup_by: HangupBy::System,
        }
    }

    /// Seconds from start to end.
    pub fn duration_s(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms) / 1000
    }

    /// Seconds from answer to end (0 when unanswered), rounded up as billing does.
    pub fn billable_s(&self) -> u64 {
        self.answer_ms
            .map_or(0, |a| self.end_ms.saturating_sub(a).div_ceil(1000))
    }
}

/// The CDR table. Append-only; later releases add columns, never change these.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS cdr (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call        INTEGER NOT NULL,      -- switchboard call id (unique per run)
    sip_call_id TEXT NOT NULL,         -- Call-ID of the caller's leg
    caller      TEXT NOT NULL,
    callee      TEXT NOT NULL,
    did         TEXT,                  -- dialled DID on a trunk call
    trunk       TEXT,                  -- trunk name on a trunk call
    start_ms    INTEGER NOT NULL,      -- Unix ms: INVITE received
    answer_ms   INTEGER,               -- Unix ms: answered (NULL if never)
    end_ms      INTEGER NOT NULL,      -- Unix ms: call over
    duration_s  INTEGER NOT NULL,      -- end - start, whole seconds
    billable_s  INTEGER NOT NULL,      -- end - answer, rounded up; 0 if unanswered
    disposition TEXT NOT NULL,         -- answered|busy|noanswer|cancelled|unavailable|failed
    sip_code    INTEGER NOT NULL,      -- final SIP status of the call
    hangup_by   TEXT NOT NULL          -- caller|callee|system
)";

/// Every call's story, one row per event, each tied to its call's `cdr` row (call
/// numbers start again at each run; the row id does not). Added in schema version 1.
pub const EVENTS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS call_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    cdr_id      INTEGER NOT NULL REFERENCES cdr(id),
    call        INTEGER NOT NULL,      -- switchboard call id, as in cdr.call
    seq         INTEGER NOT NULL,      -- place in the call's story, 0 = started
    at_ms       INTEGER NOT NULL,      -- Unix ms
    event       TEXT NOT NULL,         -- started|dialled|dial_failed|queued|offered|answered|bridged|held|resumed|ended
    detail      TEXT NOT NULL          -- the event and its fields, as JSON
);
CREATE INDEX IF NOT EXISTS call_events_cdr ON call_events(cdr_id);
CREATE INDEX IF NOT EXISTS call_events_at ON call_events(at_ms)";

/// The schema version this release writes (SQLite's `user_version`): 0 is the `cdr`
/// table alone, 1 adds `call_events`. A database of a later version is refused rather
/// than written in a shape its release does not expect.
pub const SCHEMA_VERSION: i64 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let c = Cdr {
            call: 1,
            sip_call_id: "x".into(),
            caller: "1001".into(),
            callee: "1002".into(),
            did: None,
            trunk: None,
            start_ms: 1_000,
            answer_ms: Some(3_500),
            end_ms: 10_100,
            disposition: Disposition::Answered,
            sip_code: 200,
            hangup_by: HangupBy::Caller,
        };
        assert_eq!(c.duration_s(), 9);
        assert_eq!(c.billable_s(), 7);
        let unanswered = Cdr {
            answer_ms: None,
            ..c
        };
        assert_eq!(unanswered.billable_s(), 0);
    }
}
