//! Gathering keys: a `collect` or a menu's single key, with its prompts, first-key and
//! inter-key timers, and keys from RFC 4733 events, SIP INFO or in-band tones. Keys
//! gathered into a secret variable (PINs) are never logged.

use std::collections::VecDeque;
use std::time::Instant;

use super::super::Endpoint;
use super::state::{CallId, CallTimer, Collecting, State, Status, VM_KEYS};
use crate::sip::msg::{HeaderName, Message};

/// The key in a SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf`
/// (`5`), the two forms phones send.
pub(super) fn info_digit(m: &Message) -> Option<char> {
    let ct = m.header(&HeaderName::ContentType)?.to_ascii_lowercase();
    let body = std::str::from_utf8(&m.body).ok()?;
    let text = if ct.starts_with(b"application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ct.starts_with(b"application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    match text {
        "10" => Some('*'),
        "11" => Some('#'),
        t if t.len() == 1 && "0123456789*#ABCDabcd".contains(t) => {
            t.chars().next().map(|c| c.to_ascii_uppercase())
        }
        _ => None,
    }
}

/// Whether keys gathered into `var` are a PIN, never to be logged: the voicemail menu's
/// keys, and any variable whose name ends in `pin`.
pub(super) fn secret_var(var: &str) -> bool {
    var == VM_KEYS || var.ends_with("pin")
}

impl Endpoint {
    /// Starts a `collect`: the prompt (cut short by the first key) and the first-key timer.
    /// Starts gathering keys: the prompts in turn (the first key cuts them short), then
    /// the first-key timer. A menu gathers one key and reports it to the dialplan.
    pub(in crate::endpoint) fn start_collect(
        &mut self,
        now: Instant,
        id: CallId,
        spec: crate::dialplan::Collect,
        menu: bool,
        prompts: Vec<std::path::PathBuf>,
    ) {
        let mut prompts = VecDeque::from(prompts);
        let first = prompts.pop_front();
        let timeout = spec.timeout;
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.state = State::Collecting(Collecting {
                spec,
                digits: String::new(),
                prompting: first.is_some(),
                prompts,
                menu,
            });
        }
        match first {
            Some(path) => self.play(id, path, true),
            None => self.calls.arm(id, CallTimer::DigitTimeout, now + timeout),
        }
    }

    /// A prompt of a `collect` or menu ended: the next one, or the first-key timer.
    pub(super) fn collect_prompt_done(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(col) = c.collecting() else {
            return;
        };
        if !col.digits.is_empty() {
            return;
        }
        if let Some(path) = col.prompts.pop_front() {
            self.play(id, path, true);
            return;
        }
        col.prompting = false;
        let at = now + col.spec.timeout;
        self.calls.arm(id, CallTimer::DigitTimeout, at);
    }

    /// A key from the caller (RFC 4733 or SIP INFO).
    pub(in crate::endpoint) fn on_digit(&mut self, now: Instant, id: CallId, digit: char) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        // Keys gathered into a PIN are not logged, not even one by one.
        let secret = matches!(&c.state, State::Collecting(col) if secret_var(&col.spec.var));
        if secret {
            tracing::debug!(call = %id, "key pressed");
        } else {
            tracing::debug!(call = %id, %digit, "key pressed");
        }
        let queued = c.queue.is_some() && !matches!(c.state, State::Collecting(_)) && !c.bridged();
        if queued && self.queue_key(now, id, digit) {
            return;
        }
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if matches!(c.state, State::Recording) && digit == '#' {
            // RFC 4733 keys end it in the relay already; a SIP INFO key must from here.
            if let Some(leg) = self.calls.caller_media(id) {
                self.calls.stop_record(leg);
            }
            return;
        }
        let Some(col) = c.collecting() else {
            return;
        };
        // Barge-in: RFC 4733 keys stop the prompt in the relay already; a SIP INFO key
        // must stop it from here.
        let barge = std::mem::take(&mut col.prompting);
        let terminated = col.spec.terminator == Some(digit);
        if !terminated {
            col.digits.push(digit);
        }
        let (full, at) = (col.digits.len() >= col.spec.max, now + col.spec.interdigit);
        if barge {
            if let Some(leg) = self.calls.caller_media(id) {
                self.calls.stop_play_on(leg);
            }
        }
        if terminated || full {
            self.end_collect(now, id);
            return;
        }
        self.calls.arm(id, CallTimer::DigitTimeout, at);
    }

    /// Stores the keys and `$status`, and lets the dialplan go on.
    pub(super) fn end_collect(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        // The state stays until the dialplan goes on, which tells the voicemail menu
        // that keys were gathered.
        let Some(col) = c.collecting() else {
            return;
        };
        let digits = std::mem::take(&mut col.digits);
        let (var, min, menu) = (col.spec.var.clone(), col.spec.min, col.menu);
        c.timers.stop(CallTimer::DigitTimeout);
        let status = if digits.len() >= min {
            Status::Ok
        } else {
            Status::Timeout
        };
        if menu {
            let key = digits.chars().next();
            tracing::info!(call = %id, ?key, "menu choice");
            let plan = c.plan.clone();
            plan.menu_input(&mut c.cursor, key);
        } else {
            let shown = if secret_var(&var) {
                "(hidden)"
            } else {
                digits.as_str()
            };
            tracing::info!(call = %id, %var, digits = %shown, status = status.as_str(), "collected");
            c.cursor.vars.insert(var, digits);
            c.cursor
                .vars
                .insert("status".into(), status.as_str().into());
        }
        self.run_dialplan(now, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_the_voicemail_menus_keys_are_secret_and_nothing_else() {
        for var in [VM_KEYS, "pin", "agent_pin", "vm_pin"] {
            assert!(secret_var(var), "{var}");
        }
        for var in ["ext", "agent", "pinned", "spin_count", ""] {
            assert!(!secret_var(var), "{var}");
        }
    }
}
