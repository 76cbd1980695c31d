//! The dialplan's statements: [`Parser::stmt`] reads one (`answer`, `dial`, `collect`,
//! `queue`, `if` ...) into its [`Op`], one function per statement that has arguments.
//!
//! Only turns tokens into ops and notes what they refer to (sounds, trunks, queues,
//! menus, blocks, schedules); whether those exist is checked once the whole file is read.

use regex::Regex;
use std::ops::Range;
use std::time::Duration;

use super::lexer::{PResult, Tok};
use super::parse::Parser;
use super::{Cond, Op, Template};

impl Parser {
    pub(super) fn stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let (kw, sp) = self.ident("a statement")?;
        match kw.as_str() {
            "answer" => ops.push(Op::Answer),
            "echo" => ops.push(Op::Echo),
            "play" => {
                let (name, sp) = self.string("the sound name")?;
                self.sound_refs.push((name.clone(), sp));
                ops.push(Op::Play(Template(name)));
            }
            "dial" => self.dial_stmt(ops)?,
            "hangup" => self.hangup_stmt(ops)?,
            "goto" => self.goto_stmt(sp, ops)?,
            "collect" => self.collect_stmt(sp, ops)?,
            "menu" => {
                let (name, msp) = self.ident("a menu name")?;
                self.menu_refs.push((name.clone(), msp));
                ops.push(Op::Menu(name));
            }
            "say" => self.say_stmt(ops)?,
            "record" => self.record_stmt(sp, ops)?,
            "voicemail" => self.voicemail_stmt(sp, ops)?,
            "agent" => self.agent_stmt(ops)?,
            "queue" => self.queue_stmt(ops)?,
            "park" => self.park_stmt(ops)?,
            "unpark" => ops.push(Op::Unpark(self.template("the slot to retrieve")?)),
            "dnd" => {
                let (v, vsp) = self.ident("on or off")?;
                let op = match v.as_str() {
                    "on" => super::LineOp::DndOn,
                    "off" => super::LineOp::DndOff,
                    _ => return Err((vsp, format!("dnd is `on` or `off`, not `{v}`"), None)),
                };
                ops.push(Op::Line(op, None));
            }
            "forward" => {
                let (v, vsp) = self.ident("all, busy or noanswer")?;
                let op = match v.as_str() {
                    "all" => super::LineOp::ForwardAll,
                    "busy" => super::LineOp::ForwardBusy,
                    "noanswer" => super::LineOp::ForwardNoAnswer,
                    _ => {
                        return Err((
                            vsp,
                            format!("unknown forward `{v}`"),
                            Some("forward all|busy|noanswer \"NUMBER\" (or off)".into()),
                        ))
                    }
                };
                let number = match self.peek() {
                    Some(Tok::Ident(k)) if k == "off" => {
                        self.pos += 1;
                        None
                    }
                    _ => Some(self.template("the number to forward to, or off")?),
                };
                ops.push(Op::Line(op, number));
            }
            "pickup" => {
                let ext = match self.peek() {
                    Some(Tok::Str(_)) => Some(self.template("the extension")?),
                    _ => None,
                };
                ops.push(Op::Pickup(ext));
            }
            "call" => self.call_stmt(sp, ops)?,
            "return" => {
                if self.in_block == 0 {
                    return Err((sp, "`return` belongs in a block".into(), None));
                }
                ops.push(Op::Return);
            }
            "repeat" => {
                if self.in_menu == 0 {
                    return Err((sp, "`repeat` belongs in a menu's `on` handler".into(), None));
                }
                ops.push(Op::Repeat);
            }
            "set" => {
                let (name, _) = self.ident("a variable name")?;
                self.expect(&Tok::Assign, "`=`")?;
                ops.push(Op::Set(name, self.template("a value")?));
            }
            "if" => self.if_stmt(ops)?,
            other => {
                const KNOWN: [&str; 23] = [
                    "answer",
                    "echo",
                    "play",
                    "say",
                    "collect",
                    "menu",
                    "repeat",
                    "call",
                    "return",
                    "record",
                    "voicemail",
                    "queue",
                    "park",
                    "unpark",
                    "pickup",
                    "dnd",
                    "forward",
                    "agent",
                    "dial",
                    "hangup",
                    "goto",
                    "set",
                    "if",
                ];
                let hint = match KNOWN
                    .iter()
                    .min_by_key(|k| crate::diag::edit_distance(other, k))
                {
                    Some(k) if crate::diag::edit_distance(other, k) <= 2 => {
                        format!("did you mean `{k}`?")
                    }
                    _ => format!("statements: {}", KNOWN.join(", ")),
                };
                return Err((sp, format!("unknown statement `{other}`"), Some(hint)));
            }
        }
        Ok(())
    }

    fn dial_stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let trunk = if matches!(self.peek(), Some(Tok::Ident(k)) if k == "trunk") {
            self.pos += 1;
            let (name, sp) = self.string("the trunk name")?;
            self.trunks.push((name.clone(), sp));
            Some(name)
        } else {
            None
        };
        let target = self.template("the number to dial")?;
        let mut timeout = None;
        if matches!(self.peek(), Some(Tok::Ident(k)) if k == "timeout") {
            self.pos += 1;
            match self.bump() {
                Some((Tok::Dur(d), _)) => timeout = Some(d),
                Some((Tok::Num(_), s)) => {
                    return Err((
                        s,
                        "a timeout needs a unit".into(),
                        Some("e.g. timeout 20s".into()),
                    ))
                }
                Some((_, s)) => return Err((s, "expected a duration like 20s".into(), None)),
                None => return Err((self.end..self.end, "expected a duration".into(), None)),
            }
        }
        ops.push(Op::Dial {
            target,
            trunk,
            timeout,
        });
        Ok(())
    }

    /// `park "FIRST-LAST" [timeout D]`: slots are numbers (what a phone dials to
    /// retrieve the call), at most 100 of them.
    fn park_stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let (range, sp) = self.string("the parking slots, like \"71-79\"")?;
        let bounds = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)))
            .filter(|(a, b)| a <= b && b - a < 100);
        let Some((first, last)) = bounds else {
            return Err((
                sp,
                format!("`{range}` is not a range of slot numbers"),
                Some("e.g. park \"71-79\" (at most 100 slots)".into()),
            ));
        };
        let mut timeout = Duration::from_secs(45);
        if matches!(self.peek(), Some(Tok::Ident(k)) if k == "timeout") {
            self.pos += 1;
            timeout = match self.bump() {
                Some((Tok::Dur(d), _)) => d,
                Some((_, s)) => return Err((s, "timeout needs a duration like 45s".into(), None)),
                None => return Err((self.end..self.end, "timeout needs a duration".into(), None)),
            };
        }
        ops.push(Op::Park {
            first,
            last,
            timeout,
        });
        Ok(())
    }

    fn hangup_stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let code = match self.peek() {
            Some(Tok::Num(n)) => {
                let n = *n;
                let s = self.span();
                self.pos += 1;
                if !(400..=699).contains(&n) {
                    return Err((s, format!("hangup cause {n} is not a SIP failure code"), Some("use 400..699, e.g. hangup 486, or a name: busy, noanswer, unavailable, rejected".into())));
                }
                Some(n as u16)
            }
            Some(Tok::Ident(name))
                if matches!(
                    name.as_str(),
                    "busy" | "noanswer" | "unavailable" | "rejected" | "congestion"
                ) =>
            {
                let code = match name.as_str() {
                    "busy" => 486,
                    "noanswer" => 480,
                    "unavailable" => 404,
                    "rejected" => 603,
                    _ => 503,
                };
                self.pos += 1;
                Some(code)
            }
            _ => None,
        };
        ops.push(Op::Hangup(code));
        Ok(())
    }

    fn goto_stmt(&mut self, sp: Range<usize>, ops: &mut Vec<Op>) -> PResult<()> {
        let (ctx, csp) = self.ident("a context name")?;
        let number = if matches!(self.peek(), Some(Tok::Str(_))) {
            Some(self.template("a number")?)
        } else {
            None
        };
        self.gotos.push((ctx.clone(), csp));
        ops.push(Op::Goto {
            context: ctx,
            number,
            span: sp,
        });
        Ok(())
    }

    fn collect_stmt(&mut self, sp: Range<usize>, ops: &mut Vec<Op>) -> PResult<()> {
        let (var, _) = self.ident("the variable to collect into")?;
        let mut col = super::Collect {
            var,
            min: 1,
            max: 16,
            timeout: Duration::from_secs(5),
            interdigit: Duration::from_secs(3),
            terminator: Some('#'),
            prompts: Vec::new(),
        };
        while let Some(Tok::Ident(k)) = self.peek().cloned() {
            let ksp = self.span();
            match k.as_str() {
                "min" | "max" => {
                    self.pos += 1;
                    let n = match self.bump() {
                        Some((Tok::Num(n), _)) if (1..=64).contains(&n) => n as usize,
                        Some((_, sp)) => {
                            return Err((sp, format!("{k} needs a count from 1 to 64"), None))
                        }
                        None => {
                            return Err((self.end..self.end, format!("{k} needs a count"), None))
                        }
                    };
                    if k == "min" {
                        col.min = n
                    } else {
                        col.max = n
                    }
                }
                "timeout" | "interdigit" => {
                    self.pos += 1;
                    let d = match self.bump() {
                        Some((Tok::Dur(d), _)) => d,
                        Some((_, sp)) => {
                            return Err((sp, format!("{k} needs a duration like 5s"), None))
                        }
                        None => {
                            return Err((self.end..self.end, format!("{k} needs a duration"), None))
                        }
                    };
                    if k == "timeout" {
                        col.timeout = d
                    } else {
                        col.interdigit = d
                    }
                }
                "terminator" => {
                    self.pos += 1;
                    let (t, sp) = self.string("the terminator key")?;
                    col.terminator = match t.as_str() {
                        "" => None,
                        k if k.len() == 1 && "0123456789*#".contains(k) => k.chars().next(),
                        _ => {
                            return Err((
                                sp,
                                "a terminator is one key: 0-9, * or #, or \"\" for none".into(),
                                None,
                            ))
                        }
                    };
                }
                "prompt" => {
                    self.pos += 1;
                    col.prompts = self
                        .sounds("the prompt's sound name")?
                        .into_iter()
                        .map(Template)
                        .collect();
                }
                _ => break,
            }
            let _ = ksp;
        }
        if col.min > col.max {
            return Err((
                sp,
                format!(
                    "collect asks for at least {} keys but at most {}",
                    col.min, col.max
                ),
                None,
            ));
        }
        ops.push(Op::Collect(col));
        Ok(())
    }

    fn say_stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let (how, hsp) = self.ident("`digits` or `number`")?;
        let kind = match how.as_str() {
            "digits" => super::SayKind::Digits,
            "number" => super::SayKind::Number,
            _ => {
                return Err((
                    hsp,
                    format!("say `{how}`? use `say digits \"...\"` or `say number \"...\"`"),
                    None,
                ))
            }
        };
        ops.push(Op::Say(kind, self.template("what to say")?));
        Ok(())
    }

    fn record_stmt(&mut self, sp: Range<usize>, ops: &mut Vec<Op>) -> PResult<()> {
        let name = self.template("the recording's name")?;
        let (mut max, mut silence) = (Duration::from_secs(60), Duration::from_secs(5));
        while let Some(Tok::Ident(k)) = self.peek().cloned() {
            if k != "max" && k != "silence" {
                break;
            }
            self.pos += 1;
            let d = match self.bump() {
                Some((Tok::Dur(d), _)) => d,
                Some((_, s)) => return Err((s, format!("{k} needs a duration like 30s"), None)),
                None => return Err((self.end..self.end, format!("{k} needs a duration"), None)),
            };
            if k == "max" {
                max = d
            } else {
                silence = d
            }
        }
        self.sound_refs.push(("beep".into(), sp.clone()));
        ops.push(Op::Record { name, max, silence });
        Ok(())
    }

    fn voicemail_stmt(&mut self, sp: Range<usize>, ops: &mut Vec<Op>) -> PResult<()> {
        if matches!(self.peek(), Some(Tok::Ident(k)) if k == "check") {
            self.pos += 1;
            for s in crate::voicemail::PROMPTS {
                self.sound_refs.push(((*s).into(), sp.clone()));
            }
            ops.push(Op::VoicemailCheck(self.template("the voicemail box")?));
        } else {
            self.sound_refs.push(("leave-message".into(), sp.clone()));
            self.sound_refs.push(("beep".into(), sp.clone()));
            ops.push(Op::Voicemail(self.template("the voicemail box")?));
        }
        Ok(())
    }

    fn agent_stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        use crate::acd::AgentOp;
        let (what, wsp) = self.ident("login, logout, pause or unpause")?;
        let op = match what.as_str() {
            "login" => AgentOp::Login,
            "logout" => AgentOp::Logout,
            "pause" => AgentOp::Pause(String::new()),
            "unpause" => AgentOp::Unpause,
            _ => {
                return Err((
                    wsp,
                    format!("unknown agent action `{what}`"),
                    Some(
                        "agent login, agent logout, agent pause [\"REASON\"] or agent unpause"
                            .into(),
                    ),
                ))
            }
        };
        let arg = matches!(self.peek(), Some(Tok::Str(_)));
        if op == AgentOp::Login && arg {
            // An agent ID and PIN: that agent logs in at the calling phone.
            let id = self.template("the agent ID")?;
            let (kw, ksp) = self.ident("`pin`")?;
            if kw != "pin" {
                return Err((
                    ksp,
                    format!("expected `pin` after the agent ID, found `{kw}`"),
                    Some("agent login \"ID\" pin \"PIN\"".into()),
                ));
            }
            let pin = self.template("the PIN")?;
            ops.push(Op::AgentLogin(id, pin));
        } else {
            let reason = if matches!(op, AgentOp::Pause(_)) && arg {
                Some(self.template("a reason code")?)
            } else {
                None
            };
            ops.push(Op::Agent(op, reason));
        }
        Ok(())
    }

    fn queue_stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let (name, qsp) = self.string("the queue name")?;
        self.queue_refs.push((name.clone(), qsp.clone()));
        let (mut priority, mut timeout, mut skills) = (0, None, Vec::new());
        let mut announce = None;
        while let Some(Tok::Ident(k)) = self.peek() {
            let k = k.clone();
            match k.as_str() {
                "priority" => {
                    self.pos += 1;
                    priority = match self.bump() {
                        Some((Tok::Num(n), _)) if n <= 1000 => n as u32,
                        Some((_, s)) => {
                            return Err((s, "priority needs a number 0..1000".into(), None))
                        }
                        None => {
                            return Err((
                                self.end..self.end,
                                "priority needs a number".into(),
                                None,
                            ))
                        }
                    };
                }
                "skills" => {
                    self.pos += 1;
                    let (text, ssp) = self.string("skills like \"billing>=3,spanish\"")?;
                    skills = parse_skills(&text).map_err(|m| {
                        (
                            ssp,
                            m,
                            Some(
                                "skills are NAME or NAME>=LEVEL (1..10), separated by commas"
                                    .into(),
                            ),
                        )
                    })?;
                }
                "timeout" => {
                    self.pos += 1;
                    timeout = match self.bump() {
                        Some((Tok::Dur(d), _)) => Some(d),
                        Some((_, s)) => {
                            return Err((s, "timeout needs a duration like 300s".into(), None))
                        }
                        None => {
                            return Err((
                                self.end..self.end,
                                "timeout needs a duration".into(),
                                None,
                            ))
                        }
                    };
                }
                "position-announce" => {
                    self.pos += 1;
                    let (v, vsp) = self.ident("on or off")?;
                    announce = Some(match v.as_str() {
                        "on" => true,
                        "off" => false,
                        _ => {
                            return Err((
                                vsp,
                                format!("position-announce is on or off, not `{v}`"),
                                None,
                            ))
                        }
                    });
                    if announce == Some(true) {
                        self.sound_refs
                            .push(("you-are-caller-number".into(), qsp.clone()));
                    }
                }
                _ => break,
            }
        }
        ops.push(Op::Queue {
            name,
            priority,
            timeout,
            skills,
            announce,
        });
        Ok(())
    }

    fn call_stmt(&mut self, sp: Range<usize>, ops: &mut Vec<Op>) -> PResult<()> {
        let (name, bsp) = self.ident("a block name")?;
        self.expect(&Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::RParen) => {
                    self.pos += 1;
                    break;
                }
                Some(Tok::Str(_)) => {
                    args.push(self.template("an argument")?);
                    match self.bump() {
                        Some((Tok::Comma, _)) => {}
                        Some((Tok::RParen, _)) => break,
                        Some((_, s)) => return Err((s, "expected `,` or `)`".into(), None)),
                        None => return Err((self.end..self.end, "expected `)`".into(), None)),
                    }
                }
                _ => return Err((self.span(), "arguments are quoted strings".into(), None)),
            }
        }
        self.block_refs.push((name.clone(), bsp, args.len()));
        ops.push(Op::Call(name, args, sp));
        Ok(())
    }

    fn if_stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let cond = match self.bump() {
            Some((Tok::Ident(h), _)) if h == "hours" => {
                self.expect(&Tok::LParen, "`(`")?;
                let (name, nsp) = self.string("the schedule's name")?;
                self.expect(&Tok::RParen, "`)`")?;
                self.hours_refs.push((name.clone(), nsp));
                Cond::Hours(name)
            }
            Some((Tok::Var(var), _)) if self.peek() == Some(&Tok::Matches) => {
                self.pos += 1;
                match self.bump() {
                    Some((Tok::Regex(r), rsp)) => {
                        let re = Regex::new(&r).map_err(|e| {
                            (
                                rsp,
                                format!(
                                    "bad regex: {}",
                                    e.to_string().lines().last().unwrap_or_default()
                                ),
                                None,
                            )
                        })?;
                        Cond::Matches { var, re }
                    }
                    Some((_, s)) => return Err((s, "expected /regex/ after =~".into(), None)),
                    None => return Err((self.end..self.end, "expected /regex/".into(), None)),
                }
            }
            Some((Tok::Var(var), _)) => {
                let eq = match self.bump() {
                    Some((Tok::EqEq, _)) => true,
                    Some((Tok::NotEq, _)) => false,
                    Some((_, s)) => return Err((s, "expected == or !=".into(), None)),
                    None => return Err((self.end..self.end, "expected == or !=".into(), None)),
                };
                let value = self.template("the value to compare with")?;
                Cond::Compare { var, eq, value }
            }
            Some((_, s)) => {
                return Err((
                    s,
                    "expected a condition: $variable == \"value\" or hours(\"name\")".into(),
                    None,
                ))
            }
            None => return Err((self.end..self.end, "expected a condition".into(), None)),
        };
        let jump_at = ops.len();
        ops.push(Op::JumpUnless(cond, 0));
        self.block(ops)?;
        if matches!(self.peek(), Some(Tok::Ident(k)) if k == "else") {
            self.pos += 1;
            let skip_at = ops.len();
            ops.push(Op::Jump(0));
            let else_start = ops.len();
            if let Op::JumpUnless(_, to) = &mut ops[jump_at] {
                *to = else_start;
            }
            if matches!(self.peek(), Some(Tok::Ident(k)) if k == "if") {
                self.stmt(ops)?;
            } else {
                self.block(ops)?;
            }
            let end = ops.len();
            if let Op::Jump(to) = &mut ops[skip_at] {
                *to = end;
            }
        } else {
            let end = ops.len();
            if let Op::JumpUnless(_, to) = &mut ops[jump_at] {
                *to = end;
            }
        }
        Ok(())
    }
}

/// `billing>=3,spanish`: what a queued caller needs (a bare name: level 1 or more).
fn parse_skills(text: &str) -> Result<Vec<crate::acd::SkillNeed>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, min) = match part.split_once(">=") {
            Some((n, l)) => match l.trim().parse::<u8>() {
                Ok(l) if (1..=10).contains(&l) => (n.trim(), l),
                _ => return Err(format!("skill level `{}` is not 1..10", l.trim())),
            },
            None => (part, 1),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("`{name}` is not a skill name"));
        }
        out.push(crate::acd::SkillNeed {
            skill: name.to_string(),
            min,
        });
    }
    Ok(out)
}
