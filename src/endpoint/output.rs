//! What the endpoint hands its driver: one enum of every kind of output, drained through
//! [`Endpoint::poll_output`] in one loop, so a driver that matches on it exhaustively
//! cannot forget a kind (a new variant fails its build).
//!
//! Owns no state: each variant is taken from the queue of the part that made it.

use crate::media::MediaCommand;
use crate::sip::transaction::Transmit;
use crate::story::CallRecord;
use crate::voicemail::MailboxWrite;

use super::Endpoint;

/// One thing for the driver to do.
#[derive(Debug)]
pub enum Output {
    /// A command for the media relay (open, connect, play, record, close, ...).
    Media(MediaCommand),
    /// A finished call's record and story, for the store.
    Record(CallRecord),
    /// A line for the queue log file (JSON, no newline).
    QueueLog(String),
    /// The callback requests waiting, as JSON for `STATE_DIR/callbacks.json` (sent only
    /// when they changed).
    CallbacksSaved(String),
    /// Which agent by ID is at which phone, as JSON for `STATE_DIR/agents.json` (sent only
    /// when it changed).
    AgentsSaved(String),
    /// Every extension's line settings (do not disturb, forwards), as JSON for
    /// `STATE_DIR/lines.json` (sent only when they changed).
    LinesSaved(String),
    /// A change to a voicemail box to make durable.
    Mailbox(MailboxWrite),
    /// Bytes to send to a SIP peer.
    Transmit(Transmit),
}

impl Endpoint {
    /// The next output, until `None`; drain it after every `handle_*` call. Media
    /// commands come first and transmits last, so the relay has a call's ports open
    /// before the message that announces them leaves.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(m) = self.poll_media() {
            return Some(Output::Media(m));
        }
        if let Some(r) = self.poll_record() {
            return Some(Output::Record(r));
        }
        if let Some(l) = self.poll_queue_log() {
            return Some(Output::QueueLog(l));
        }
        if let Some(j) = self.poll_callbacks_saved() {
            return Some(Output::CallbacksSaved(j));
        }
        if let Some(j) = self.poll_agents_saved() {
            return Some(Output::AgentsSaved(j));
        }
        if let Some(j) = self.poll_lines_saved() {
            return Some(Output::LinesSaved(j));
        }
        if let Some(w) = self.poll_mailbox_write() {
            return Some(Output::Mailbox(w));
        }
        self.poll_transmit().map(Output::Transmit)
    }
}
