//! `record` and leaving voicemail: the recording asked for, started once the prompts before
//! it have played. The media session writes the file; this decides when.

use super::super::Endpoint;
use super::state::{PendingRecord, Wait};
use crate::media::{MediaCommand, SessionId};

impl Endpoint {
    /// Plays `prompts`, then starts recording.
    pub(in crate::endpoint) fn record_after(
        &mut self,
        id: u64,
        prompts: Vec<std::path::PathBuf>,
        rec: PendingRecord,
    ) {
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.pending_record = Some(rec);
        }
        self.play_paths(id, prompts);
        self.set_wait(id, Wait::PreRecord);
    }

    /// The prompts before a recording ended: record.
    pub(super) fn start_record(&mut self, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(rec) = c.pending_record.take() else {
            return;
        };
        c.play_seq += 1;
        c.wait = Wait::Record;
        let seq = c.play_seq;
        // Kept apart from the call: a caller who hangs up mid-message still leaves it.
        if let Some(m) = rec.message {
            self.leaving.insert((id, seq), m);
        }
        self.calls.media_out.push_back(MediaCommand::Record {
            id: SessionId(id),
            path: rec.path,
            max: rec.max,
            silence: rec.silence,
            index: rec.index,
            seq,
        });
    }
}
