//! Each extension's own line settings: do not disturb and call forwarding (every call,
//! when busy, when not answered), set by the extension from its phone (the dialplan's
//! `dnd` and `forward`), kept across a restart (the driver writes them to
//! `STATE_DIR/lines.json` when they change, and hands them back at start), shown by
//! `ctl lines`.
//!
//! Part of the endpoint: owns the settings only; what a call does with them (refused as
//! busy, routed to the forward's number) is the call layer's ([`super::call`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

use super::Endpoint;
use crate::dialplan::LineOp;

/// One extension's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineSettings {
    /// Do not disturb: calls to it are refused as busy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dnd: bool,
    /// Every call goes to this number instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_all: Option<String>,
    /// A call it refuses as busy goes to this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_busy: Option<String>,
    /// A call it does not answer in time (or while it is not registered) goes here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_noanswer: Option<String>,
}

pub(super) use crate::story::ForwardWhy;

/// Every extension's settings that are not the default.
#[derive(Default)]
pub(super) struct Lines {
    settings: BTreeMap<String, LineSettings>,
    /// Changed since the driver was last handed them.
    changed: bool,
}

impl Lines {
    /// Whether `ext` is not to be disturbed.
    pub(super) fn dnd(&self, ext: &str) -> bool {
        self.settings.get(ext).is_some_and(|s| s.dnd)
    }

    /// Where `ext` forwards calls for `why`, if it does.
    pub(super) fn forward(&self, ext: &str, why: ForwardWhy) -> Option<&str> {
        let s = self.settings.get(ext)?;
        match why {
            ForwardWhy::All => s.forward_all.as_deref(),
            ForwardWhy::Busy => s.forward_busy.as_deref(),
            ForwardWhy::NoAnswer => s.forward_noanswer.as_deref(),
        }
    }
}

/// One extension's line for `ctl lines`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    /// The extension.
    pub extension: String,
    /// Its registered contacts.
    pub contacts: usize,
    /// `idle`, `ringing` or `busy`, as its busy lamp shows.
    pub state: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: LineSettings,
}

impl Endpoint {
    /// Extension `ext` changes a setting of its line; `number` is the forward's target
    /// (`None`: off).
    pub(super) fn set_line(&mut self, ext: &str, op: LineOp, number: Option<String>) {
        let s = self.lines.settings.entry(ext.to_string()).or_default();
        match op {
            LineOp::DndOn => s.dnd = true,
            LineOp::DndOff => s.dnd = false,
            LineOp::ForwardAll => s.forward_all = number,
            LineOp::ForwardBusy => s.forward_busy = number,
            LineOp::ForwardNoAnswer => s.forward_noanswer = number,
        }
        tracing::info!(%ext, ?op, settings = ?s, "line settings changed");
        if *s == LineSettings::default() {
            self.lines.settings.remove(ext);
        }
        self.lines.changed = true;
    }

    /// The settings as JSON to keep, if they changed since last asked.
    pub(super) fn poll_lines_saved(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.lines.changed) {
            return None;
        }
        Some(serde_json::to_string_pretty(&self.lines.settings).unwrap_or_else(|_| "{}".into()))
    }

    /// Takes back the settings kept before a restart (`json` as
    /// [`super::Output::LinesSaved`] gave it); those of extensions no longer configured
    /// are dropped. Returns how many extensions have settings.
    pub fn restore_lines(&mut self, now: Instant, json: &str) -> Result<usize, String> {
        let settings: BTreeMap<String, LineSettings> =
            serde_json::from_str(json).map_err(|e| format!("unreadable line settings: {e}"))?;
        let (kept, dropped): (BTreeMap<_, _>, BTreeMap<_, _>) = settings
            .into_iter()
            .partition(|(ext, _)| self.users.contains_key(ext));
        for ext in dropped.keys() {
            tracing::warn!(%ext, "line settings of an extension no longer configured dropped");
        }
        self.lines.changed = !dropped.is_empty();
        self.lines.settings = kept;
        let dnd: Vec<String> = self
            .lines
            .settings
            .iter()
            .filter(|(_, s)| s.dnd)
            .map(|(e, _)| e.clone())
            .collect();
        for ext in dnd {
            self.dnd_agents(now, &ext);
        }
        Ok(self.lines.settings.len())
    }

    /// The agents whose calls ring extension `ext` follow its do not disturb: paused
    /// (reason `dnd`) while it is on, so the queues pass them over without a missed offer
    /// against them; back when it goes off, unless paused for another reason meanwhile.
    pub(super) fn dnd_agents(&mut self, now: Instant, ext: &str) {
        use crate::acd::{AgentState, Event};
        let on = self.lines.dnd(ext);
        for agent in self.phone_agents(ext) {
            let ev = match self.acd.agent_state(&agent) {
                AgentState::LoggedOut => None,
                AgentState::Paused(r) if r == "dnd" => (!on).then_some(Event::Unpause(agent)),
                AgentState::Paused(_) => None,
                _ => on.then(|| Event::Pause(agent, "dnd".into())),
            };
            if let Some(ev) = ev {
                self.acd.handle(now, ev);
            }
        }
        self.drain_acd(now);
    }

    /// Every extension's line, for `ctl lines`.
    pub fn lines(&self, now: std::time::Instant) -> Vec<LineView> {
        let mut v: Vec<LineView> = self
            .users
            .keys()
            .map(|ext| LineView {
                extension: ext.clone(),
                contacts: self.registrar.lookup(now, &self.aor(ext)).len(),
                state: match self.line_state(ext) {
                    super::blf::Line::Idle => "idle",
                    super::blf::Line::Ringing(_) => "ringing",
                    super::blf::Line::Busy => "busy",
                }
                .into(),
                settings: self.lines.settings.get(ext).cloned().unwrap_or_default(),
            })
            .collect();
        v.sort_by(|a, b| a.extension.cmp(&b.extension));
        v
    }
}
