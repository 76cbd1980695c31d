//! What the caller hears from us: prompts played in turn, music and ringback, and the
//! media engine's reports (a prompt ended, a key heard in band, a recording saved).

use std::collections::VecDeque;
use std::time::Instant;

use super::super::Endpoint;
use super::state::{CallId, State, Status};
use crate::media::MediaEvent;

impl Endpoint {
    /// Plays `names` (sounds, without `.wav`) one after the other; the dialplan goes on
    /// after the last.
    pub(super) fn play_in_turn(&mut self, id: CallId, names: Vec<String>) {
        let paths = self.sound_paths(names.iter().map(String::as_str));
        self.play_paths(id, paths);
    }

    /// The files of sounds named as in the dialplan.
    pub(in crate::endpoint) fn sound_paths<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Vec<std::path::PathBuf> {
        names
            .into_iter()
            .map(|n| self.sounds_dir.join(format!("{n}.wav")))
            .collect()
    }

    /// Plays files one after the other; the dialplan goes on after the last.
    pub(in crate::endpoint) fn play_paths(&mut self, id: CallId, paths: Vec<std::path::PathBuf>) {
        let mut queue = VecDeque::from(paths);
        let Some(first) = queue.pop_front() else {
            return;
        };
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.play_queue = queue;
            c.state = State::Playing;
        }
        self.play(id, first, false);
    }

    /// The caller (a callback's agent while the customer rings) hears `path` round and
    /// round until something else is played, it joins a bridge, or the call ends;
    /// nothing is reported, so a missing file is silence, never a loop of retries.
    pub(in crate::endpoint) fn play_music(&mut self, id: CallId, path: std::path::PathBuf) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        // A prompt's late end report is not taken for anything after it.
        c.play_seq += 1;
        if let Some(leg) = self.calls.prompt_leg(id) {
            self.calls.music(leg, path);
        }
    }

    /// A caller answered here (in a menu) hears ringback while its dial rings: its phone
    /// plays none, since for it the call is up already.
    pub(super) fn ringback(&mut self, id: CallId) {
        let ringing = self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.answered && !c.bridged() && !c.dialing.is_empty());
        if ringing {
            let path = self.sounds_dir.join("ringback.wav");
            self.play_music(id, path);
        }
    }

    /// Plays the next prompt waiting for call `id`; false if none is left.
    pub(super) fn play_next(&mut self, id: CallId) -> bool {
        let next = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.play_queue.pop_front());
        let Some(path) = next else {
            return false;
        };
        self.play(id, path, false);
        true
    }

    /// Starts a prompt for call `id`, numbered so its end report is recognised.
    /// Stops what plays to the caller and forgets it: its end report, whenever it comes,
    /// is not taken for a later prompt's.
    pub(in crate::endpoint) fn stop_play(&mut self, id: CallId) {
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.play_seq += 1;
            if let Some(leg) = self.calls.prompt_leg(id) {
                self.calls.stop_play_on(leg);
            }
        }
    }

    /// A callback's agent hears ringback while the customer's phone rings.
    pub(super) fn callback_ringback(&mut self, id: CallId) {
        let ringing = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.callback.as_ref())
            .is_some_and(|cb| cb.ringing.is_some());
        if ringing {
            let path = self.sounds_dir.join("ringback.wav");
            self.play_music(id, path);
        }
    }

    pub(in crate::endpoint) fn play(
        &mut self,
        id: CallId,
        path: std::path::PathBuf,
        barge_in: bool,
    ) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.play_seq += 1;
        let seq = c.play_seq;
        match self.calls.prompt_leg(id) {
            Some(leg) => self.calls.play_to(leg, path, barge_in, seq),
            // Every path to a prompt answers the call first, which opens its media.
            None => {
                tracing::error!(call = %id, file = %path.display(), "a prompt for a call with no media; not played")
            }
        }
    }

    /// What the relay reports.
    pub(in crate::endpoint) fn on_media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::PlayDone { leg, seq, played } => {
                let Some((id, _)) = self.calls.media_owner(leg) else {
                    return;
                };
                if self.leaving_prompt_done(now, id, leg, seq) {
                    return;
                }
                // The end of an earlier prompt (cut short by a key) is not this one's.
                let Some(c) = self.calls.calls.get(&id).filter(|c| c.play_seq == seq) else {
                    return;
                };
                // A prompt that could not be played is passed over like one that was (the
                // engine logged why): the caller is not left waiting on it.
                if !played {
                    tracing::debug!(call = %id, seq, "prompt not played; going on");
                }
                match c.state {
                    State::Playing | State::PreRecord(_) => {
                        let pre = matches!(c.state, State::PreRecord(_));
                        if !self.play_next(id) {
                            if pre {
                                self.start_record(id);
                            } else {
                                self.run_dialplan(now, id);
                            }
                        }
                    }
                    State::Collecting(_) => self.collect_prompt_done(now, id),
                    // The rest of an announcement, or the music again (also after a
                    // prompt that could not be played: its absence is logged).
                    State::Queued => self.run_queue(now, id),
                    State::Parked(_) => self.park_prompt_done(id),
                    State::Goodbye => self.hang_up(now, id, None),
                    _ => {}
                }
            }
            MediaEvent::RecordDone {
                leg,
                seq,
                ms,
                saved,
            } => {
                if let Some((mailbox, mut msg)) = self.leaving.remove(&(leg, seq)) {
                    if saved {
                        msg.ms = ms;
                        self.mailboxes
                            .entry(mailbox.clone())
                            .or_default()
                            .messages
                            .push(msg);
                        self.mailbox_changed(now, &mailbox);
                    }
                }
                let Some((id, _)) = self.calls.media_owner(leg) else {
                    return;
                };
                let waiting = self
                    .calls
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.play_seq == seq && matches!(c.state, State::Recording));
                if waiting {
                    let status = match (saved, ms) {
                        (true, _) => Status::Ok,
                        (false, 0) => Status::Empty,
                        (false, _) => Status::Failed,
                    };
                    self.set_status(id, status);
                    self.run_dialplan(now, id);
                }
            }
            // A party's feature code comes first; only the caller's other keys drive its
            // dialplan (a callback's agent hearing ringback may press some).
            MediaEvent::Digit { leg, digit } => {
                let Some((id, caller)) = self.calls.media_owner(leg) else {
                    return;
                };
                let party = self.calls.party_of_media(id, leg);
                if party.is_some_and(|l| self.feature_key(now, id, l, digit)) {
                    return;
                }
                if caller {
                    self.on_digit(now, id, digit);
                }
            }
            MediaEvent::Inactive { leg } => self.on_media_silence(now, leg),
        }
    }
}
