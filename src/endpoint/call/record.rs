//! `record` and leaving voicemail: the recording asked for, started once the prompts before
//! it have played. The caller's media leg writes the file; this decides when.

use super::super::Endpoint;
use super::state::{CallId, PendingRecord, State};

impl Endpoint {
    /// Plays `prompts`, then starts recording.
    pub(in crate::endpoint) fn record_after(
        &mut self,
        id: CallId,
        prompts: Vec<std::path::PathBuf>,
        rec: PendingRecord,
    ) {
        self.play_paths(id, prompts);
        self.set_state(id, State::PreRecord(rec));
    }

    /// The prompts before a recording ended: record.
    pub(super) fn start_record(&mut self, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let rec = match std::mem::replace(&mut c.state, State::Recording) {
            State::PreRecord(rec) => rec,
            other => {
                c.state = other;
                return;
            }
        };
        c.play_seq += 1;
        let seq = c.play_seq;
        // Every path to a recording answers the call first, which opens its media.
        let Some(leg) = self.calls.caller_media(id) else {
            tracing::error!(call = %id, "a recording for a call with no media; not made");
            return;
        };
        // Kept apart from the call: a caller who hangs up mid-message still leaves it.
        if let Some(m) = rec.message {
            self.leaving.insert((leg, seq), m);
        }
        self.calls
            .record(leg, rec.path, rec.max, rec.silence, rec.index, seq);
    }
}
