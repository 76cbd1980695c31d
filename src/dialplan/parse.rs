//! Text to [`Dialplan`]: a recursive-descent parser over the lexer's tokens (lexer.rs)
//! that keeps the byte span of everything, so every error points at its
//! `file:line:column`. This file reads the file's shape (contexts, routes, menus, blocks)
//! and checks what refers to what once all is read; statements are stmt.rs's.

use regex::Regex;
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use super::lexer::{Lexer, PResult, Tok};
use super::{Dialplan, Matcher, Menu, Op, Route, Template};
use crate::diag::ConfigError;

/// A context as parsed: name, where the name stands, routes.
type ParsedContext = (String, Range<usize>, Vec<Route>);

pub(super) struct Parser {
    pub(super) toks: Vec<(Tok, Range<usize>)>,
    pub(super) pos: usize,
    pub(super) end: usize,
    /// Where each `goto` names a context, to check once all contexts are known.
    pub(super) gotos: Vec<(String, Range<usize>)>,
    /// Where each `dial trunk` names a trunk, for the config to check.
    pub(super) trunks: Vec<(String, Range<usize>)>,
    /// Where each `menu NAME` statement names a menu.
    pub(super) menu_refs: Vec<(String, Range<usize>)>,
    pub(super) queue_refs: Vec<(String, Range<usize>)>,
    pub(super) defs: HashMap<String, Range<usize>>,
    /// Menus defined so far.
    pub(super) menus: HashMap<String, Menu>,
    /// Depth of menu handlers being parsed (`repeat` is allowed inside).
    pub(super) in_menu: usize,
    /// Every sound a `play`, `prompt` or menu names, with where.
    pub(super) sound_refs: Vec<(String, Range<usize>)>,
    /// Every schedule an `hours("...")` names, with where.
    pub(super) hours_refs: Vec<(String, Range<usize>)>,
    /// Blocks defined so far, and every `call` of one (name, where, argument count).
    pub(super) blocks: HashMap<String, super::Block>,
    pub(super) block_refs: Vec<(String, Range<usize>, usize)>,
    /// Depth of blocks being parsed (`return` is allowed inside).
    pub(super) in_block: usize,
}

impl Parser {
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    pub(super) fn span(&self) -> Range<usize> {
        self.toks
            .get(self.pos)
            .map_or(self.end..self.end, |t| t.1.clone())
    }

    pub(super) fn bump(&mut self) -> Option<(Tok, Range<usize>)> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    pub(super) fn expect(&mut self, want: &Tok, what: &str) -> PResult<Range<usize>> {
        match self.bump() {
            Some((t, sp)) if &t == want => Ok(sp),
            Some((_, sp)) => Err((sp, format!("expected {what}"), None)),
            None => Err((
                self.end..self.end,
                format!("expected {what}, found the end of the file"),
                None,
            )),
        }
    }

    pub(super) fn ident(&mut self, what: &str) -> PResult<(String, Range<usize>)> {
        match self.bump() {
            Some((Tok::Ident(s), sp)) => Ok((s, sp)),
            Some((_, sp)) => Err((sp, format!("expected {what}"), None)),
            None => Err((
                self.end..self.end,
                format!("expected {what}, found the end of the file"),
                None,
            )),
        }
    }

    pub(super) fn string(&mut self, what: &str) -> PResult<(String, Range<usize>)> {
        match self.bump() {
            Some((Tok::Str(s), sp)) => Ok((s, sp)),
            Some((_, sp)) => Err((sp, format!("expected {what} in double quotes"), None)),
            None => Err((self.end..self.end, format!("expected {what}"), None)),
        }
    }

    pub(super) fn skip_semis(&mut self) {
        while self.peek() == Some(&Tok::Semi) {
            self.pos += 1;
        }
    }

    pub(super) fn file(&mut self) -> PResult<Vec<ParsedContext>> {
        let mut out = Vec::new();
        loop {
            self.skip_semis();
            let Some(_) = self.peek() else { break };
            let (kw, sp) = self.ident("`context`")?;
            if kw == "menu" {
                self.menu_def()?;
                continue;
            }
            if kw == "block" {
                self.block_def()?;
                continue;
            }
            if kw != "context" {
                return Err((
                    sp,
                    format!("expected `context` or `menu`, found `{kw}`"),
                    Some("a dialplan file is a list of `context NAME { match ... }` and `menu NAME { ... }` blocks".into()),
                ));
            }
            let (name, nsp) = self.ident("a context name")?;
            self.expect(&Tok::LBrace, "`{`")?;
            let mut routes = Vec::new();
            loop {
                self.skip_semis();
                match self.peek() {
                    Some(Tok::RBrace) => {
                        self.pos += 1;
                        break;
                    }
                    None => {
                        return Err((
                            nsp,
                            format!("context `{name}` is not closed"),
                            Some("add `}`".into()),
                        ))
                    }
                    _ => routes.push(self.route()?),
                }
            }
            out.push((name, nsp, routes));
        }
        Ok(out)
    }

    /// `menu NAME { prompt "a" "b"; timeout 5s; retries 3; on "1" { ... } on invalid { ... }
    /// on timeout { ... } on exhausted { ... } }`
    pub(super) fn menu_def(&mut self) -> PResult<()> {
        let (name, nsp) = self.ident("a menu name")?;
        self.expect(&Tok::LBrace, "`{`")?;
        let mut m = Menu {
            prompts: Vec::new(),
            timeout: Duration::from_secs(5),
            retries: 3,
            options: Vec::new(),
            invalid: vec![Op::Repeat],
            on_timeout: vec![Op::Repeat],
            exhausted: vec![Op::Hangup(None)],
        };
        loop {
            self.skip_semis();
            let (kw, sp) = match self.peek() {
                Some(Tok::RBrace) => {
                    self.pos += 1;
                    break;
                }
                None => {
                    return Err((
                        nsp,
                        format!("menu `{name}` is not closed"),
                        Some("add `}`".into()),
                    ))
                }
                _ => self.ident("a menu setting (prompt, timeout, retries, on)")?,
            };
            match kw.as_str() {
                "prompt" => m.prompts.extend(
                    self.sounds("a prompt's sound name")?
                        .into_iter()
                        .map(Template),
                ),
                "timeout" => match self.bump() {
                    Some((Tok::Dur(d), _)) => m.timeout = d,
                    Some((_, s)) => {
                        return Err((s, "timeout needs a duration like 5s".into(), None))
                    }
                    None => {
                        return Err((self.end..self.end, "timeout needs a duration".into(), None))
                    }
                },
                "retries" => match self.bump() {
                    Some((Tok::Num(n), _)) if (1..=20).contains(&n) => m.retries = n as u32,
                    Some((_, s)) => {
                        return Err((s, "retries needs a count from 1 to 20".into(), None))
                    }
                    None => return Err((self.end..self.end, "retries needs a count".into(), None)),
                },
                "on" => {
                    let which = self.bump();
                    self.in_menu += 1;
                    let mut ops = Vec::new();
                    let r = self.block(&mut ops);
                    self.in_menu -= 1;
                    r?;
                    match which {
                        Some((Tok::Str(k), ksp)) => {
                            let key = match k.as_str() {
                                one if one.len() == 1 && "0123456789*#".contains(one) => {
                                    one.chars().next().unwrap_or('0')
                                }
                                _ => {
                                    return Err((
                                        ksp,
                                        "a menu option is one key: 0-9, * or #".into(),
                                        None,
                                    ))
                                }
                            };
                            if m.options.iter().any(|(o, _)| *o == key) {
                                return Err((
                                    ksp,
                                    format!("key {key} is handled twice in menu `{name}`"),
                                    None,
                                ));
                            }
                            m.options.push((key, ops));
                        }
                        Some((Tok::Ident(w), _)) if w == "invalid" => m.invalid = ops,
                        Some((Tok::Ident(w), _)) if w == "timeout" => m.on_timeout = ops,
                        Some((Tok::Ident(w), _)) if w == "exhausted" => m.exhausted = ops,
                        Some((_, s)) => {
                            return Err((
                                s,
                                "expected a key in quotes, or invalid, timeout or exhausted".into(),
                                None,
                            ))
                        }
                        None => {
                            return Err((
                                self.end..self.end,
                                "expected what `on` handles".into(),
                                None,
                            ))
                        }
                    }
                }
                other => {
                    return Err((
                        sp,
                        format!("unknown menu setting `{other}`"),
                        Some("a menu has prompt, timeout, retries and `on` handlers".into()),
                    ));
                }
            }
        }
        if m.options.is_empty() {
            return Err((
                nsp,
                format!("menu `{name}` has no `on \"KEY\"` option"),
                None,
            ));
        }
        self.defs.insert(format!("menu `{name}`"), nsp.clone());
        if self.menus.insert(name.clone(), m).is_some() {
            return Err((nsp, format!("menu `{name}` is defined twice"), None));
        }
        Ok(())
    }

    /// `block NAME(param, ...) { statements }`: a reusable piece of dialplan.
    pub(super) fn block_def(&mut self) -> PResult<()> {
        let (name, nsp) = self.ident("a block name")?;
        self.defs.insert(format!("block `{name}`"), nsp.clone());
        self.expect(&Tok::LParen, "`(`")?;
        let mut params = Vec::new();
        loop {
            match self.bump() {
                Some((Tok::RParen, _)) => break,
                Some((Tok::Ident(p), _)) => {
                    params.push(p);
                    match self.bump() {
                        Some((Tok::Comma, _)) => {}
                        Some((Tok::RParen, _)) => break,
                        Some((_, s)) => return Err((s, "expected `,` or `)`".into(), None)),
                        None => return Err((self.end..self.end, "expected `)`".into(), None)),
                    }
                }
                Some((_, s)) => return Err((s, "expected a parameter name or `)`".into(), None)),
                None => return Err((self.end..self.end, "expected `)`".into(), None)),
            }
        }
        let mut ops = Vec::new();
        self.in_block += 1;
        let r = self.block(&mut ops);
        self.in_block -= 1;
        r?;
        if self
            .blocks
            .insert(name.clone(), super::Block { params, ops })
            .is_some()
        {
            return Err((nsp, format!("block `{name}` is defined twice"), None));
        }
        Ok(())
    }

    /// One or more quoted sound names, remembered for the config to check they exist.
    pub(super) fn sounds(&mut self, what: &str) -> PResult<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let (name, sp) = self.string(what)?;
            self.sound_refs.push((name.clone(), sp));
            out.push(name);
            if !matches!(self.peek(), Some(Tok::Str(_))) {
                return Ok(out);
            }
        }
    }

    pub(super) fn route(&mut self) -> PResult<Route> {
        let (kw, sp) = self.ident("`match`")?;
        if kw != "match" {
            return Err((sp, format!("expected `match`, found `{kw}`"), Some("routes are `match \"NUMBER\" { ... }`, `match prefix \"9\" { ... }`, `match /REGEX/ { ... }` or `match any { ... }`".into())));
        }
        let matcher = match self.bump() {
            Some((Tok::Str(s), _)) => Matcher::Exact(s),
            Some((Tok::Regex(r), rsp)) => {
                let re = Regex::new(&r).map_err(|e| {
                    (
                        rsp.clone(),
                        format!(
                            "bad regex: {}",
                            e.to_string().lines().last().unwrap_or_default()
                        ),
                        None,
                    )
                })?;
                Matcher::Regex(re)
            }
            Some((Tok::Ident(k), _)) if k == "prefix" => {
                Matcher::Prefix(self.string("the prefix")?.0)
            }
            Some((Tok::Ident(k), _)) if k == "any" => Matcher::Any,
            Some((_, sp)) => {
                return Err((
                    sp,
                    "expected what to match: \"NUMBER\", prefix \"P\", /REGEX/ or any".into(),
                    None,
                ))
            }
            None => return Err((self.end..self.end, "expected what to match".into(), None)),
        };
        let mut ops = Vec::new();
        self.block(&mut ops)?;
        Ok(Route {
            matcher,
            ops,
            span: sp,
        })
    }

    pub(super) fn block(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        self.expect(&Tok::LBrace, "`{`")?;
        loop {
            self.skip_semis();
            match self.peek() {
                Some(Tok::RBrace) => {
                    self.pos += 1;
                    return Ok(());
                }
                None => {
                    return Err((
                        self.end..self.end,
                        "block is not closed".into(),
                        Some("add `}`".into()),
                    ))
                }
                _ => self.stmt(ops)?,
            }
        }
    }

    pub(super) fn template(&mut self, what: &str) -> PResult<Template> {
        Ok(Template(self.string(what)?.0))
    }
}

/// Parses one dialplan file.
pub fn parse(text: &str, file: &str) -> Result<Dialplan, ConfigError> {
    let err = |(sp, msg, hint): (Range<usize>, String, Option<String>)| {
        ConfigError::at(file, text, sp, msg, hint)
    };
    let toks = Lexer::tokens(text).map_err(err)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.len(),
        gotos: Vec::new(),
        trunks: Vec::new(),
        menu_refs: Vec::new(),
        queue_refs: Vec::new(),
        defs: HashMap::new(),
        menus: HashMap::new(),
        in_menu: 0,
        sound_refs: Vec::new(),
        hours_refs: Vec::new(),
        blocks: HashMap::new(),
        block_refs: Vec::new(),
        in_block: 0,
    };
    let contexts = p.file().map_err(err)?;
    let mut map = HashMap::new();
    for (name, sp, routes) in contexts {
        if map.insert(name.clone(), routes).is_some() {
            return Err(err((
                sp,
                format!("context `{name}` is defined twice"),
                None,
            )));
        }
    }
    for (ctx, sp) in &p.gotos {
        if !map.contains_key(ctx) {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(err((
                sp.clone(),
                format!("goto names unknown context `{ctx}`"),
                Some(format!("contexts in this file: {}", known.join(", "))),
            )));
        }
    }
    for (b, sp, n) in &p.block_refs {
        match p.blocks.get(b) {
            None => {
                return Err(err((
                    sp.clone(),
                    format!("no block named `{b}`"),
                    Some("define it with `block NAME(params) { ... }`".into()),
                )))
            }
            Some(def) if def.params.len() != *n => {
                return Err(err((
                    sp.clone(),
                    format!(
                        "block `{b}` takes {} argument(s), given {n}",
                        def.params.len()
                    ),
                    None,
                )));
            }
            Some(_) => {}
        }
    }
    for (m, sp) in &p.menu_refs {
        if !p.menus.contains_key(m) {
            let mut known: Vec<&str> = p.menus.keys().map(String::as_str).collect();
            known.sort_unstable();
            let hint = if known.is_empty() {
                "define it with `menu NAME { ... }`".to_string()
            } else {
                format!("menus in this file: {}", known.join(", "))
            };
            return Err(err((
                sp.clone(),
                format!("no menu named `{m}`"),
                Some(hint),
            )));
        }
    }
    let plan = Dialplan {
        contexts: map,
        menus: p.menus,
        trunk_refs: p.trunks,
        sound_refs: p.sound_refs,
        hours_refs: p.hours_refs,
        menu_refs: p.menu_refs,
        queue_refs: p.queue_refs,
        defs: p.defs,
        unused_blocks: {
            let mut v: Vec<String> = p
                .blocks
                .keys()
                .filter(|b| !p.block_refs.iter().any(|r| &r.0 == *b))
                .cloned()
                .collect();
            v.sort_unstable();
            v
        },
        blocks: p.blocks,
    };
    if let Some((sp, msg)) = plan.instant_loop() {
        return Err(err((
            sp,
            msg,
            Some(
                "play, collect, dial or hang up somewhere in the loop, so it waits for the caller"
                    .into(),
            ),
        )));
    }
    Ok(plan)
}
