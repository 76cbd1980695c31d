//! Busy lamps: the state of a line (an extension, a parking slot, or a queue agent by ID)
//! as the dialog event package (RFC 4235) shows it to a phone watching it: idle, ringing
//! (with the ringing dialog's identifiers, which a phone may name to pick the call up)
//! or busy.
//!
//! Part of the endpoint: it reads the lines' state from the calls and the busy count, and
//! writes the dialog-info document; the subscriptions and their NOTIFYs are
//! [`super::mwi`]'s, and the call layer says when a line may have changed
//! ([`Endpoint::notify_line`]).

use super::Endpoint;

/// A line's state, as a lamp shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// Nothing on it.
    Idle,
    /// A call rings at it; the dialog we ring it on, if one device answered provisionally.
    Ringing(Option<RingingDialog>),
    /// On a call (an extension), or holding a parked call (a slot).
    Busy,
}

/// The identifiers of the early dialog a line rings on (RFC 4235 §4.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RingingDialog {
    pub(super) call_id: String,
    pub(super) local_tag: String,
    pub(super) remote_tag: Option<String>,
}

/// Escapes text for an XML attribute or element.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Endpoint {
    /// Whether `name` is a line a phone may watch: one of our extensions, or a number a
    /// parking slot may have (digits only).
    pub(super) fn is_line(&self, name: &str) -> bool {
        self.users.contains_key(name)
            || (!name.is_empty() && name.len() <= 8 && name.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Line `name`'s state now. An agent's ID shows the agent's state: idle while it is
    /// ready for a queue call, ringing while one is offered, busy otherwise (talking, in
    /// wrap-up, paused or logged out).
    pub(super) fn line_state(&self, name: &str) -> Line {
        if self.hot_desk.is_agent(name) {
            return match self.acd.agent_state(name) {
                crate::acd::AgentState::Available => Line::Idle,
                crate::acd::AgentState::Ringing => Line::Ringing(None),
                _ => Line::Busy,
            };
        }
        if self.in_use.contains_key(name) || self.calls.parked.contains_key(name) {
            return Line::Busy;
        }
        match self.calls.ringing_at(name) {
            Some(d) => Line::Ringing(d),
            None => Line::Idle,
        }
    }

    /// The dialog-info document (RFC 4235) for line `name` in `state`, numbered `version`.
    pub(super) fn dialog_info(&self, name: &str, state: &Line, version: u32) -> String {
        let entity = format!("sip:{name}@{}", self.domain);
        let dialog = match state {
            Line::Idle => format!(
                "<dialog id=\"{}\"><state>terminated</state></dialog>",
                xml(name)
            ),
            Line::Busy => format!(
                "<dialog id=\"{}\"><state>confirmed</state></dialog>",
                xml(name)
            ),
            Line::Ringing(d) => {
                let ids = d.as_ref().map_or_else(String::new, |d| {
                    let remote = d
                        .remote_tag
                        .as_ref()
                        .map_or_else(String::new, |t| format!(" remote-tag=\"{}\"", xml(t)));
                    format!(
                        " call-id=\"{}\" local-tag=\"{}\"{remote}",
                        xml(&d.call_id),
                        xml(&d.local_tag)
                    )
                });
                format!(
                    "<dialog id=\"{}\"{ids} direction=\"recipient\"><state>early</state></dialog>",
                    xml(name)
                )
            }
        };
        format!(
            "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"{}\">\r\n{dialog}\r\n</dialog-info>\r\n",
            xml(&entity)
        )
    }
}
