//! Text to [`Dialplan`]: a small lexer and a recursive-descent parser that keep the byte
//! span of everything, so every error points at its `file:line:column`.

use regex::Regex;
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use super::{Cond, Dialplan, Matcher, Menu, Op, Route, Template};
use crate::diag::ConfigError;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Regex(String),
    Num(u64),
    Dur(Duration),
    Var(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Semi,
    EqEq,
    NotEq,
    Matches,
    Assign,
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
}

type PResult<T> = Result<T, (Range<usize>, String, Option<String>)>;

/// A context as parsed: name, where the name stands, routes.
type ParsedContext = (String, Range<usize>, Vec<Route>);

impl<'a> Lexer<'a> {
    fn tokens(s: &'a str) -> PResult<Vec<(Tok, Range<usize>)>> {
        let mut lx = Lexer { s, i: 0 };
        let mut out = Vec::new();
        while let Some(t) = lx.next()? {
            out.push(t);
        }
        Ok(out)
    }

    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn next(&mut self) -> PResult<Option<(Tok, Range<usize>)>> {
        // Whitespace and comments.
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => self.i += c.len_utf8(),
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.i += c.len_utf8();
                    }
                }
                _ => break,
            }
        }
        let start = self.i;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let tok = match c {
            '{' => {
                self.i += 1;
                Tok::LBrace
            }
            '(' => {
                self.i += 1;
                Tok::LParen
            }
            ')' => {
                self.i += 1;
                Tok::RParen
            }
            ',' => {
                self.i += 1;
                Tok::Comma
            }
            '}' => {
                self.i += 1;
                Tok::RBrace
            }
            ';' => {
                self.i += 1;
                Tok::Semi
            }
            '=' if self.s[self.i..].starts_with("==") => {
                self.i += 2;
                Tok::EqEq
            }
            '=' if self.s[self.i..].starts_with("=~") => {
                self.i += 2;
                Tok::Matches
            }
            '=' => {
                self.i += 1;
                Tok::Assign
            }
            '!' if self.s[self.i..].starts_with("!=") => {
                self.i += 2;
                Tok::NotEq
            }
            '"' => {
                self.i += 1;
                let mut v = String::new();
                loop {
                    match self.peek() {
                        None | Some('\n') => {
                            return Err((
                                start..self.i,
                                "unterminated string".into(),
                                Some("close it with \"".into()),
                            ));
                        }
                        Some('"') => {
                            self.i += 1;
                            break;
                        }
                        Some('\\') => {
                            self.i += 1;
                            if let Some(n) = self.peek() {
                                v.push(n);
                                self.i += n.len_utf8();
                            }
                        }
                        Some(ch) => {
                            v.push(ch);
                            self.i += ch.len_utf8();
                        }
                    }
                }
                Tok::Str(v)
            }
            '/' => {
                self.i += 1;
                let mut v = String::new();
                loop {
                    match self.peek() {
                        None | Some('\n') => {
                            return Err((
                                start..self.i,
                                "unterminated regex".into(),
                                Some("close it with /".into()),
                            ));
                        }
                        Some('/') => {
                            self.i += 1;
                            break;
                        }
                        Some('\\') if self.s[self.i..].starts_with("\\/") => {
                            v.push('/');
                            self.i += 2;
                        }
                        Some(ch) => {
                            v.push(ch);
                            self.i += ch.len_utf8();
                        }
                    }
                }
                Tok::Regex(v)
            }
            '$' => {
                self.i += 1;
                let braced = self.peek() == Some('{');
                if braced {
                    self.i += 1;
                }
                let ns = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.i += 1;
                }
                let name = self.s[ns..self.i].to_string();
                if braced {
                    if self.peek() != Some('}') {
                        return Err((
                            start..self.i,
                            "expected `}` after variable name".into(),
                            None,
                        ));
                    }
                    self.i += 1;
                }
                if name.is_empty() {
                    return Err((
                        start..self.i,
                        "expected a variable name after `$`".into(),
                        None,
                    ));
                }
                Tok::Var(name)
            }
            c if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.i += 1;
                }
                let text = &self.s[start..self.i];
                let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
                let unit = &text[digits.len()..];
                let n: u64 = digits
                    .parse()
                    .map_err(|_| (start..self.i, "number too large".to_string(), None))?;
                match unit {
                    "" => Tok::Num(n),
                    "ms" => Tok::Dur(Duration::from_millis(n)),
                    "s" => Tok::Dur(Duration::from_secs(n)),
                    "m" => Tok::Dur(Duration::from_secs(n * 60)),
                    _ => {
                        return Err((
                            start..self.i,
                            format!("unknown unit `{unit}`"),
                            Some("durations are written 500ms, 20s or 2m".into()),
                        ));
                    }
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                {
                    self.i += self.peek().map_or(1, char::len_utf8);
                }
                Tok::Ident(self.s[start..self.i].to_string())
            }
            other => {
                self.i += other.len_utf8();
                return Err((
                    start..self.i,
                    format!("unexpected character `{other}`"),
                    None,
                ));
            }
        };
        Ok(Some((tok, start..self.i)))
    }
}

struct Parser {
    toks: Vec<(Tok, Range<usize>)>,
    pos: usize,
    end: usize,
    /// Where each `goto` names a context, to check once all contexts are known.
    gotos: Vec<(String, Range<usize>)>,
    /// Where each `dial trunk` names a trunk, for the config to check.
    trunks: Vec<(String, Range<usize>)>,
    /// Where each `menu NAME` statement names a menu.
    menu_refs: Vec<(String, Range<usize>)>,
    queue_refs: Vec<(String, Range<usize>)>,
    defs: HashMap<String, Range<usize>>,
    /// Menus defined so far.
    menus: HashMap<String, Menu>,
    /// Depth of menu handlers being parsed (`repeat` is allowed inside).
    in_menu: usize,
    /// Every sound a `play`, `prompt` or menu names, with where.
    sound_refs: Vec<(String, Range<usize>)>,
    /// Every schedule an `hours("...")` names, with where.
    hours_refs: Vec<(String, Range<usize>)>,
    /// Blocks defined so far, and every `call` of one (name, where, argument count).
    blocks: HashMap<String, super::Block>,
    block_refs: Vec<(String, Range<usize>, usize)>,
    /// Depth of blocks being parsed (`return` is allowed inside).
    in_block: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn span(&self) -> Range<usize> {
        self.toks
            .get(self.pos)
            .map_or(self.end..self.end, |t| t.1.clone())
    }

    fn bump(&mut self) -> Option<(Tok, Range<usize>)> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Tok, what: &str) -> PResult<Range<usize>> {
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

    fn ident(&mut self, what: &str) -> PResult<(String, Range<usize>)> {
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

    fn string(&mut self, what: &str) -> PResult<(String, Range<usize>)> {
        match self.bump() {
            Some((Tok::Str(s), sp)) => Ok((s, sp)),
            Some((_, sp)) => Err((sp, format!("expected {what} in double quotes"), None)),
            None => Err((self.end..self.end, format!("expected {what}"), None)),
        }
    }

    fn skip_semis(&mut self) {
        while self.peek() == Some(&Tok::Semi) {
            self.pos += 1;
        }
    }

    fn file(&mut self) -> PResult<Vec<ParsedContext>> {
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
    fn menu_def(&mut self) -> PResult<()> {
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
    fn block_def(&mut self) -> PResult<()> {
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
    fn sounds(&mut self, what: &str) -> PResult<Vec<String>> {
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

    fn route(&mut self) -> PResult<Route> {
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

    fn block(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
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

    fn template(&mut self, what: &str) -> PResult<Template> {
        Ok(Template(self.string(what)?.0))
    }

    fn stmt(&mut self, ops: &mut Vec<Op>) -> PResult<()> {
        let (kw, sp) = self.ident("a statement")?;
        match kw.as_str() {
            "answer" => ops.push(Op::Answer),
            "echo" => ops.push(Op::Echo),
            "play" => {
                let (name, sp) = self.string("the sound name")?;
                self.sound_refs.push((name.clone(), sp));
                ops.push(Op::Play(Template(name)));
            }
            "dial" => {
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
                        Some((_, s)) => {
                            return Err((s, "expected a duration like 20s".into(), None))
                        }
                        None => {
                            return Err((self.end..self.end, "expected a duration".into(), None))
                        }
                    }
                }
                ops.push(Op::Dial {
                    target,
                    trunk,
                    timeout,
                });
            }
            "hangup" => {
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
            }
            "goto" => {
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
            }
            "collect" => {
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
                                    return Err((
                                        sp,
                                        format!("{k} needs a count from 1 to 64"),
                                        None,
                                    ))
                                }
                                None => {
                                    return Err((
                                        self.end..self.end,
                                        format!("{k} needs a count"),
                                        None,
                                    ))
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
                                    return Err((
                                        self.end..self.end,
                                        format!("{k} needs a duration"),
                                        None,
                                    ))
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
                                        "a terminator is one key: 0-9, * or #, or \"\" for none"
                                            .into(),
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
            }
            "menu" => {
                let (name, msp) = self.ident("a menu name")?;
                self.menu_refs.push((name.clone(), msp));
                ops.push(Op::Menu(name));
            }
            "say" => {
                let (how, hsp) = self.ident("`digits` or `number`")?;
                let kind = match how.as_str() {
                    "digits" => super::SayKind::Digits,
                    "number" => super::SayKind::Number,
                    _ => {
                        return Err((
                            hsp,
                            format!(
                                "say `{how}`? use `say digits \"...\"` or `say number \"...\"`"
                            ),
                            None,
                        ))
                    }
                };
                ops.push(Op::Say(kind, self.template("what to say")?));
            }
            "record" => {
                let name = self.template("the recording's name")?;
                let (mut max, mut silence) = (Duration::from_secs(60), Duration::from_secs(5));
                while let Some(Tok::Ident(k)) = self.peek().cloned() {
                    if k != "max" && k != "silence" {
                        break;
                    }
                    self.pos += 1;
                    let d = match self.bump() {
                        Some((Tok::Dur(d), _)) => d,
                        Some((_, s)) => {
                            return Err((s, format!("{k} needs a duration like 30s"), None))
                        }
                        None => {
                            return Err((self.end..self.end, format!("{k} needs a duration"), None))
                        }
                    };
                    if k == "max" {
                        max = d
                    } else {
                        silence = d
                    }
                }
                self.sound_refs.push(("beep".into(), sp.clone()));
                ops.push(Op::Record { name, max, silence });
            }
            "voicemail" => {
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
            }
            "agent" => {
                use crate::acd::AgentOp;
                let (what, wsp) = self.ident("login, logout, pause or unpause")?;
                let op = match what.as_str() {
                    "login" => AgentOp::Login,
                    "logout" => AgentOp::Logout,
                    "pause" => AgentOp::Pause(String::new()),
                    "unpause" => AgentOp::Unpause,
                    _ => return Err((
                        wsp,
                        format!("unknown agent action `{what}`"),
                        Some(
                            "agent login, agent logout, agent pause [\"REASON\"] or agent unpause"
                                .into(),
                        ),
                    )),
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
            }
            "queue" => {
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
                                (ssp, m, Some("skills are NAME or NAME>=LEVEL (1..10), separated by commas".into()))
                            })?;
                        }
                        "timeout" => {
                            self.pos += 1;
                            timeout = match self.bump() {
                                Some((Tok::Dur(d), _)) => Some(d),
                                Some((_, s)) => {
                                    return Err((
                                        s,
                                        "timeout needs a duration like 300s".into(),
                                        None,
                                    ))
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
            }
            "call" => {
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
                                Some((_, s)) => {
                                    return Err((s, "expected `,` or `)`".into(), None))
                                }
                                None => {
                                    return Err((self.end..self.end, "expected `)`".into(), None))
                                }
                            }
                        }
                        _ => {
                            return Err((self.span(), "arguments are quoted strings".into(), None))
                        }
                    }
                }
                self.block_refs.push((name.clone(), bsp, args.len()));
                ops.push(Op::Call(name, args, sp));
            }
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
            "if" => {
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
                            Some((_, s)) => {
                                return Err((s, "expected /regex/ after =~".into(), None))
                            }
                            None => {
                                return Err((self.end..self.end, "expected /regex/".into(), None))
                            }
                        }
                    }
                    Some((Tok::Var(var), _)) => {
                        let eq = match self.bump() {
                            Some((Tok::EqEq, _)) => true,
                            Some((Tok::NotEq, _)) => false,
                            Some((_, s)) => return Err((s, "expected == or !=".into(), None)),
                            None => {
                                return Err((self.end..self.end, "expected == or !=".into(), None))
                            }
                        };
                        let value = self.template("the value to compare with")?;
                        Cond::Compare { var, eq, value }
                    }
                    Some((_, s)) => {
                        return Err((
                            s,
                            "expected a condition: $variable == \"value\" or hours(\"name\")"
                                .into(),
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
            }
            other => {
                const KNOWN: [&str; 18] = [
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
