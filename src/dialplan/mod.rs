//! The dialplan: the admin's routing rules, in `dialplans/*.dp`.
//!
//! ```text
//! context internal {                       # calls from our own phones
//!   match "600" { answer; echo }           # exact number
//!   match /^(1\d\d\d)$/ {                  # regex; $1 is the first capture
//!     dial "$1" timeout 20s                # returns only if not answered, setting $status
//!     if $status == "busy" { hangup busy } else { hangup noanswer }
//!   }
//!   match prefix "9" { dial trunk "pstn" "+1$1" }   # prefix; $1 is the rest
//! }
//! ```
//!
//! [`parse`] turns text into a [`Dialplan`] (errors carry `file:line:column`); [`Cursor`]
//! runs a call through it, sans-IO: [`Dialplan::step`] advances until the call must do
//! something ([`Action`]) and the call reports back (`$status`) before stepping again.
//! This module holds rules and cursors only; it never touches a call or a socket.

mod action;
mod lexer;
mod parse;
mod stmt;

pub use action::{Action, Collect, Hidden, LineOp};
pub use parse::parse;

pub use crate::say::{say_prompts, SayKind};
use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A parsed dialplan.
#[derive(Debug)]
pub struct Dialplan {
    contexts: HashMap<String, Vec<Route>>,
    menus: HashMap<String, Menu>,
    trunk_refs: Vec<(String, std::ops::Range<usize>)>,
    sound_refs: Vec<(String, std::ops::Range<usize>)>,
    hours_refs: Vec<(String, std::ops::Range<usize>)>,
    menu_refs: Vec<(String, std::ops::Range<usize>)>,
    queue_refs: Vec<(String, std::ops::Range<usize>)>,
    /// Where each menu and block is defined, by "menu `NAME`" / "block `NAME`".
    defs: HashMap<String, std::ops::Range<usize>>,
    blocks: HashMap<String, Block>,
    unused_blocks: Vec<String>,
}

/// A reusable piece of dialplan: `block NAME(params) { ... }`, entered with `call`.
#[derive(Debug)]
struct Block {
    params: Vec<String>,
    ops: Vec<Op>,
}

/// How a route matches the dialled number.
#[derive(Debug)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Any,
}

#[derive(Debug)]
struct Route {
    matcher: Matcher,
    ops: Vec<Op>,
    #[allow(dead_code)]
    span: std::ops::Range<usize>,
}

/// A voice menu: prompts, one key, a handler per key, and what to do on a wrong key, on
/// silence and after too many of either.
#[derive(Debug)]
struct Menu {
    prompts: Vec<Template>,
    timeout: Duration,
    retries: u32,
    options: Vec<(char, Vec<Op>)>,
    invalid: Vec<Op>,
    on_timeout: Vec<Op>,
    exhausted: Vec<Op>,
}

/// Which of a menu's handlers runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Handler {
    Option(usize),
    Invalid,
    Timeout,
    Exhausted,
}

/// Where the ops being run come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Loc {
    Route { context: String, route: usize },
    Menu { name: String, handler: Handler },
    Block(String),
}

/// Where control goes next, and the statement that sends it there.
type Edge = (Loc, std::ops::Range<usize>);

/// A string with `$name` / `${name}` / `$1` references, expanded at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// A template of literal text.
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The text (after expansion, when it came from a step).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn expand(&self, vars: &HashMap<String, String>) -> String {
        let s = &self.0;
        let mut out = String::with_capacity(s.len());
        let mut chars = s.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            let braced = chars.peek().is_some_and(|(_, c)| *c == '{');
            if braced {
                chars.next();
            }
            let mut name = String::new();
            while let Some((_, c)) = chars.peek() {
                if c.is_ascii_alphanumeric() || *c == '_' {
                    name.push(*c);
                    chars.next();
                } else {
                    break;
                }
            }
            if braced && chars.peek().is_some_and(|(_, c)| *c == '}') {
                chars.next();
            }
            if name.is_empty() {
                out.push('$');
            } else if let Some(v) = vars.get(&name) {
                out.push_str(v);
            }
        }
        out
    }
}

#[derive(Debug)]
enum Cond {
    /// `$var == "value"` (or `!=`).
    Compare {
        var: String,
        eq: bool,
        value: Template,
    },
    /// `$var =~ /regex/`.
    Matches { var: String, re: Regex },
    /// `hours("name")`: the schedule is open now.
    Hours(String),
}

/// What a step may consult besides the call's variables: the time and the schedules.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// Now, as Unix milliseconds.
    pub unix_ms: i64,
    /// The configured schedules.
    pub hours: Option<&'a HashMap<String, crate::hours::Schedule>>,
}

/// No clock and no schedules (every `hours()` is closed).
pub const NO_ENV: Env<'static> = Env {
    unix_ms: 0,
    hours: None,
};

#[derive(Debug)]
enum Op {
    Answer,
    Echo,
    Play(Template),
    Dial {
        target: Template,
        trunk: Option<String>,
        timeout: Option<Duration>,
    },
    Hangup(Option<u16>),
    Goto {
        context: String,
        number: Option<Template>,
        span: std::ops::Range<usize>,
    },
    Set(String, Template),
    Collect(Collect),
    Say(SayKind, Template),
    Menu(String),
    Repeat,
    Call(String, Vec<Template>, std::ops::Range<usize>),
    Return,
    Record {
        name: Template,
        max: Duration,
        silence: Duration,
    },
    Voicemail(Template),
    VoicemailCheck(Template),
    Queue {
        name: String,
        priority: u32,
        timeout: Option<Duration>,
        skills: Vec<crate::acd::SkillNeed>,
        announce: Option<bool>,
    },
    /// `park "FIRST-LAST" [timeout D]`: the caller waits in the first free slot.
    Park {
        first: u32,
        last: u32,
        timeout: Duration,
    },
    /// `unpark "SLOT"`: the call parked there is the caller's.
    Unpark(Template),
    /// `pickup ["EXT"]`: the caller answers a call ringing in its group, or at EXT.
    Pickup(Option<Template>),
    /// `dnd on|off`, `forward all|busy|noanswer "NUMBER"|off`: the caller's line.
    Line(LineOp, Option<Template>),
    /// `agent login|logout|pause ["REASON"]|unpause`: the caller as an ACD agent.
    Agent(crate::acd::AgentOp, Option<Template>),
    /// `agent login "ID" pin "PIN"`: an agent by ID logs in at the calling phone.
    AgentLogin(Template, Template),
    JumpUnless(Cond, usize),
    Jump(usize),
}

/// Where a call is in the dialplan.
#[derive(Clone, Debug)]
pub struct Cursor {
    loc: Loc,
    pc: usize,
    /// The menu in force and the wrong keys or silences so far.
    menu: Option<(String, u32)>,
    /// Where `call`s return to.
    stack: Vec<(Loc, usize)>,
    /// Variables: `caller`, `dialed`, captures `1`..`9`, `status`, and `set` ones.
    pub vars: HashMap<String, String>,
}

/// Ops one `step` may run before it gives up (a `goto` loop without an exit).
const STEP_BUDGET: usize = 1000;

impl Dialplan {
    /// Names of the contexts defined.
    pub fn contexts(&self) -> impl Iterator<Item = &str> {
        self.contexts.keys().map(String::as_str)
    }

    /// Every trunk a `dial trunk` names, with where (for the config to check they exist).
    pub fn trunk_refs(&self) -> &[(String, std::ops::Range<usize>)] {
        &self.trunk_refs
    }

    /// Every sound a `play`, `prompt` or menu names, with where (for `check`).
    pub fn sound_refs(&self) -> &[(String, std::ops::Range<usize>)] {
        &self.sound_refs
    }

    /// Blocks no `call` ever enters (worth a warning).
    pub fn unused_blocks(&self) -> &[String] {
        &self.unused_blocks
    }

    /// Menus no route or handler ever enters (worth a warning: dead configuration).
    pub fn unused_menus(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .menus
            .keys()
            .filter(|m| !self.menu_refs.iter().any(|r| &r.0 == *m))
            .map(String::as_str)
            .collect();
        v.sort_unstable();
        v
    }

    /// Menus and blocks that something names but no call can reach: every way in is from
    /// menus or blocks that are unused or unreachable themselves (worth a warning).
    pub fn unreachable(&self) -> Vec<String> {
        let mut seen: HashSet<Loc> = HashSet::new();
        let mut todo: Vec<Loc> = Vec::new();
        for (context, routes) in &self.contexts {
            for route in 0..routes.len() {
                todo.push(Loc::Route {
                    context: context.clone(),
                    route,
                });
            }
        }
        while let Some(loc) = todo.pop() {
            if !seen.insert(loc.clone()) {
                continue;
            }
            for (next, _) in self.edges(&loc, false) {
                todo.push(next);
            }
        }
        let reached = |l: &Loc| seen.contains(l);
        let mut out: Vec<String> = Vec::new();
        for name in self.menus.keys() {
            let used = self.menu_refs.iter().any(|r| &r.0 == name);
            let l = Loc::Menu {
                name: name.clone(),
                handler: Handler::Invalid,
            };
            if used && !reached(&l) {
                out.push(format!("menu `{name}`"));
            }
        }
        for name in self.blocks.keys() {
            if !self.unused_blocks.contains(name) && !reached(&Loc::Block(name.clone())) {
                out.push(format!("block `{name}`"));
            }
        }
        out.sort_unstable();
        out
    }

    /// Where the ops at `loc` lead: blocks called, contexts gone to, menus entered (a menu
    /// as its `Invalid` handler, standing for all of them). With `instant`, only what
    /// follows without the call waiting for anything (a prompt, keys, a ring or the end).
    fn edges(&self, loc: &Loc, instant: bool) -> Vec<Edge> {
        let mut out = Vec::new();
        let ops: Vec<&[Op]> = match loc {
            Loc::Menu { name, .. } => match self.menus.get(name) {
                Some(m) => m
                    .options
                    .iter()
                    .map(|(_, o)| o.as_slice())
                    .chain([m.invalid.as_slice(), &m.on_timeout, &m.exhausted])
                    .collect(),
                None => Vec::new(),
            },
            _ => self.ops(loc).into_iter().collect(),
        };
        for ops in ops {
            let mut seen = vec![false; ops.len()];
            let mut todo = vec![0usize];
            while let Some(pc) = todo.pop() {
                let Some(op) = ops.get(pc) else { continue };
                if std::mem::replace(&mut seen[pc], true) {
                    continue;
                }
                let waits = matches!(
                    op,
                    Op::Echo
                        | Op::Play(_)
                        | Op::Collect(_)
                        | Op::Say(..)
                        | Op::Menu(_)
                        | Op::Repeat
                        | Op::Record { .. }
                        | Op::Voicemail(_)
                        | Op::VoicemailCheck(_)
                        | Op::Queue { .. }
                        | Op::Park { .. }
                        | Op::Hangup(_)
                        // Ringing waits (an unregistered extension fails at once, which
                        // the step budget still catches at run time).
                        | Op::Dial { .. }
                );
                match op {
                    Op::Menu(name) if !instant => out.push((
                        Loc::Menu {
                            name: name.clone(),
                            handler: Handler::Invalid,
                        },
                        0..0,
                    )),
                    Op::Call(name, _, sp) => out.push((Loc::Block(name.clone()), sp.clone())),
                    Op::Goto {
                        context,
                        number,
                        span,
                    } => {
                        let routes = self.contexts.get(context).map_or(0, Vec::len);
                        // A literal number goes to one route; one built from variables
                        // could go to any (only counted for reachability).
                        let literal = number.as_ref().filter(|t| !t.0.contains('$'));
                        match literal {
                            Some(t) => {
                                let mut vars = HashMap::new();
                                if let Some(route) = self.route_for(context, &t.0, &mut vars) {
                                    out.push((
                                        Loc::Route {
                                            context: context.clone(),
                                            route,
                                        },
                                        span.clone(),
                                    ));
                                }
                            }
                            None if !instant => {
                                for route in 0..routes {
                                    out.push((
                                        Loc::Route {
                                            context: context.clone(),
                                            route,
                                        },
                                        span.clone(),
                                    ));
                                }
                            }
                            None => {}
                        }
                        continue;
                    }
                    _ => {}
                }
                if (waits && instant) || matches!(op, Op::Hangup(_) | Op::Return) {
                    continue;
                }
                match op {
                    Op::Jump(to) => todo.push(*to),
                    Op::JumpUnless(_, to) => {
                        todo.push(*to);
                        todo.push(pc + 1);
                    }
                    _ => todo.push(pc + 1),
                }
            }
        }
        out
    }

    /// A cycle of `goto`s and `call`s that never waits for the caller (it would spin until
    /// the step budget hangs the call up): where it closes, and what to say.
    fn instant_loop(&self) -> Option<(std::ops::Range<usize>, String)> {
        let mut nodes: Vec<Loc> = self.blocks.keys().map(|b| Loc::Block(b.clone())).collect();
        for (context, routes) in &self.contexts {
            nodes.extend((0..routes.len()).map(|route| Loc::Route {
                context: context.clone(),
                route,
            }));
        }
        // Depth-first search with the path on a stack: an edge back into the path is a
        // loop.
        let mut done: HashSet<Loc> = HashSet::new();
        for start in nodes {
            if done.contains(&start) {
                continue;
            }
            let mut path: Vec<(Loc, Vec<Edge>)> = vec![(start.clone(), self.edges(&start, true))];
            while let Some((_, edges)) = path.last_mut() {
                match edges.pop() {
                    Some((next, sp)) => {
                        if path.iter().any(|(l, _)| *l == next) {
                            let what = match &next {
                                Loc::Block(b) => format!("block `{b}`"),
                                Loc::Route { context, .. } => format!("context `{context}`"),
                                Loc::Menu { name, .. } => format!("menu `{name}`"),
                            };
                            return Some((
                                sp,
                                format!("loop without an exit: this comes back to {what} without waiting for the caller"),
                            ));
                        }
                        if !done.contains(&next) {
                            let e = self.edges(&next, true);
                            path.push((next, e));
                        }
                    }
                    None => {
                        if let Some((l, _)) = path.pop() {
                            done.insert(l);
                        }
                    }
                }
            }
        }
        None
    }

    /// Where a menu or block is defined: `what` as "menu `NAME`" or "block `NAME`".
    pub fn definition(&self, what: &str) -> Option<std::ops::Range<usize>> {
        self.defs.get(what).cloned()
    }

    /// Every queue a `queue` names, with where (for the config to check they exist).
    pub fn queue_refs(&self) -> &[(String, std::ops::Range<usize>)] {
        &self.queue_refs
    }

    /// Every schedule an `hours("...")` names, with where (for the config to check).
    pub fn hours_refs(&self) -> &[(String, std::ops::Range<usize>)] {
        &self.hours_refs
    }

    /// Whether a context exists.
    pub fn has_context(&self, name: &str) -> bool {
        self.contexts.contains_key(name)
    }

    fn route_for(
        &self,
        context: &str,
        number: &str,
        vars: &mut HashMap<String, String>,
    ) -> Option<usize> {
        let routes = self.contexts.get(context)?;
        for (i, r) in routes.iter().enumerate() {
            let captures: Option<Vec<String>> = match &r.matcher {
                Matcher::Exact(s) => (s == number).then(Vec::new),
                Matcher::Prefix(p) => number
                    .strip_prefix(p.as_str())
                    .map(|rest| vec![rest.to_string()]),
                Matcher::Regex(re) => re.captures(number).map(|c| {
                    c.iter()
                        .skip(1)
                        .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                        .collect()
                }),
                Matcher::Any => Some(Vec::new()),
            };
            if let Some(caps) = captures {
                for n in 1..=9 {
                    vars.remove(&n.to_string());
                }
                for (n, c) in caps.into_iter().enumerate().take(9) {
                    vars.insert((n + 1).to_string(), c);
                }
                return Some(i);
            }
        }
        None
    }

    /// Starts a call dialling `number` in `context`; `None` when no route matches.
    pub fn start(&self, context: &str, number: &str, caller: &str) -> Option<Cursor> {
        let mut vars = HashMap::new();
        vars.insert("caller".into(), caller.to_string());
        vars.insert("dialed".into(), number.to_string());
        let route = self.route_for(context, number, &mut vars)?;
        Some(Cursor {
            loc: Loc::Route {
                context: context.to_string(),
                route,
            },
            pc: 0,
            menu: None,
            stack: Vec::new(),
            vars,
        })
    }

    fn ops(&self, loc: &Loc) -> Option<&[Op]> {
        match loc {
            Loc::Route { context, route } => self
                .contexts
                .get(context)?
                .get(*route)
                .map(|r| r.ops.as_slice()),
            Loc::Block(name) => self.blocks.get(name).map(|b| b.ops.as_slice()),
            Loc::Menu { name, handler } => {
                let m = self.menus.get(name)?;
                Some(match handler {
                    Handler::Option(i) => m.options.get(*i)?.1.as_slice(),
                    Handler::Invalid => &m.invalid,
                    Handler::Timeout => &m.on_timeout,
                    Handler::Exhausted => &m.exhausted,
                })
            }
        }
    }

    fn menu_action(&self, name: &str, vars: &HashMap<String, String>) -> Action {
        match self.menus.get(name) {
            Some(m) => Action::Menu {
                prompts: m.prompts.iter().map(|t| t.expand(vars)).collect(),
                timeout: m.timeout,
            },
            None => Action::Hangup(Some(500)),
        }
    }

    /// The caller's answer to the menu in force: a key, or `None` for silence. Moves the
    /// cursor to the key's handler, or to the wrong-key / silence handler (by default the
    /// menu again), or, after `retries` of those, to the `exhausted` one (by default a
    /// hang-up). `$key` holds the key.
    pub fn menu_input(&self, cur: &mut Cursor, key: Option<char>) {
        let Some((name, attempts)) = cur.menu.clone() else {
            return;
        };
        let Some(m) = self.menus.get(&name) else {
            return;
        };
        if let Some(k) = key {
            cur.vars.insert("key".into(), k.to_string());
        }
        let handler = match key.and_then(|k| m.options.iter().position(|(o, _)| *o == k)) {
            Some(i) => {
                cur.menu = Some((name.clone(), 0));
                Handler::Option(i)
            }
            None => {
                let attempts = attempts + 1;
                cur.menu = Some((name.clone(), attempts));
                if attempts >= m.retries {
                    Handler::Exhausted
                } else if key.is_some() {
                    Handler::Invalid
                } else {
                    Handler::Timeout
                }
            }
        };
        cur.loc = Loc::Menu { name, handler };
        cur.pc = 0;
    }

    /// Runs until the call must act. The end of a route is `Hangup(None)`.
    pub fn step(&self, cur: &mut Cursor, env: &Env<'_>) -> Action {
        for _ in 0..STEP_BUDGET {
            let Some(ops) = self.ops(&cur.loc) else {
                return Action::Hangup(Some(500));
            };
            let Some(op) = ops.get(cur.pc) else {
                // The end of a block returns to its caller; the end of a route hangs up.
                match cur.stack.pop() {
                    Some((loc, pc)) => {
                        cur.loc = loc;
                        cur.pc = pc;
                        continue;
                    }
                    None => return Action::Hangup(None),
                }
            };
            cur.pc += 1;
            match op {
                Op::Answer => return Action::Answer,
                Op::Echo => return Action::Echo,
                Op::Play(t) => return Action::Play(t.expand(&cur.vars)),
                Op::Dial {
                    target,
                    trunk,
                    timeout,
                } => {
                    return Action::Dial {
                        target: target.expand(&cur.vars),
                        trunk: trunk.clone(),
                        timeout: *timeout,
                    };
                }
                Op::Hangup(c) => return Action::Hangup(*c),
                Op::Collect(col) => {
                    let mut col = col.clone();
                    col.prompts = col
                        .prompts
                        .iter()
                        .map(|p| Template(p.expand(&cur.vars)))
                        .collect();
                    return Action::Collect(col);
                }
                Op::Say(kind, t) => {
                    return Action::PlayAll(say_prompts(*kind, &t.expand(&cur.vars)))
                }
                Op::Menu(name) => {
                    // Entering a menu (again) starts its count of wrong keys afresh.
                    cur.menu = Some((name.clone(), 0));
                    return self.menu_action(name, &cur.vars);
                }
                Op::Call(name, args, _) => {
                    let Some(b) = self.blocks.get(name) else {
                        return Action::Hangup(Some(500));
                    };
                    if cur.stack.len() >= 32 {
                        tracing::warn!(block = %name, "blocks call each other too deep; hanging up");
                        return Action::Hangup(Some(500));
                    }
                    let values: Vec<String> = args.iter().map(|a| a.expand(&cur.vars)).collect();
                    for (p, v) in b.params.iter().zip(values) {
                        cur.vars.insert(p.clone(), v);
                    }
                    cur.stack.push((cur.loc.clone(), cur.pc));
                    cur.loc = Loc::Block(name.clone());
                    cur.pc = 0;
                }
                Op::Record { name, max, silence } => {
                    return Action::Record {
                        name: name.expand(&cur.vars),
                        max: *max,
                        silence: *silence,
                    };
                }
                Op::Voicemail(b) => return Action::Voicemail(b.expand(&cur.vars)),
                Op::Park {
                    first,
                    last,
                    timeout,
                } => {
                    return Action::Park {
                        first: *first,
                        last: *last,
                        timeout: *timeout,
                    }
                }
                Op::Unpark(slot) => return Action::Unpark(slot.expand(&cur.vars)),
                Op::Pickup(ext) => {
                    return Action::Pickup(ext.as_ref().map(|e| e.expand(&cur.vars)))
                }
                Op::Line(op, number) => {
                    return Action::Line(*op, number.as_ref().map(|n| n.expand(&cur.vars)))
                }
                Op::VoicemailCheck(b) => return Action::VoicemailCheck(b.expand(&cur.vars)),
                Op::Agent(op, reason) => {
                    let op = match (op, reason) {
                        (crate::acd::AgentOp::Pause(_), Some(t)) => {
                            crate::acd::AgentOp::Pause(t.expand(&cur.vars))
                        }
                        (op, _) => op.clone(),
                    };
                    return Action::Agent(op);
                }
                Op::AgentLogin(id, pin) => {
                    return Action::AgentLogin {
                        id: id.expand(&cur.vars),
                        pin: Hidden(pin.expand(&cur.vars)),
                    };
                }
                Op::Queue {
                    name,
                    priority,
                    timeout,
                    skills,
                    announce,
                } => {
                    return Action::Queue {
                        name: name.clone(),
                        priority: *priority,
                        timeout: *timeout,
                        skills: skills.clone(),
                        announce: *announce,
                    }
                }
                Op::Return => match cur.stack.pop() {
                    Some((loc, pc)) => {
                        cur.loc = loc;
                        cur.pc = pc;
                    }
                    None => return Action::Hangup(None),
                },
                Op::Repeat => {
                    let Some((name, _)) = cur.menu.clone() else {
                        return Action::Hangup(Some(500));
                    };
                    return self.menu_action(&name, &cur.vars);
                }
                Op::Set(name, t) => {
                    let v = t.expand(&cur.vars);
                    cur.vars.insert(name.clone(), v);
                }
                Op::JumpUnless(cond, to) => {
                    let holds = match cond {
                        Cond::Compare { var, eq, value } => {
                            let have = cur.vars.get(var).map(String::as_str).unwrap_or("");
                            (have == value.expand(&cur.vars)) == *eq
                        }
                        Cond::Matches { var, re } => {
                            re.is_match(cur.vars.get(var).map(String::as_str).unwrap_or(""))
                        }
                        Cond::Hours(name) => env
                            .hours
                            .and_then(|h| h.get(name))
                            .is_some_and(|s| s.is_open(env.unix_ms)),
                    };
                    if !holds {
                        cur.pc = *to;
                    }
                }
                Op::Jump(to) => cur.pc = *to,
                Op::Goto {
                    context, number, ..
                } => {
                    let n = number.as_ref().map_or_else(
                        || cur.vars.get("dialed").cloned().unwrap_or_default(),
                        |t| t.expand(&cur.vars),
                    );
                    let mut vars = cur.vars.clone();
                    match self.route_for(context, &n, &mut vars) {
                        Some(r) => {
                            vars.insert("dialed".into(), n);
                            *cur = Cursor {
                                loc: Loc::Route {
                                    context: context.clone(),
                                    route: r,
                                },
                                pc: 0,
                                menu: None,
                                stack: Vec::new(),
                                vars,
                            };
                        }
                        None => return Action::Hangup(Some(404)),
                    }
                }
            }
        }
        tracing::warn!(loc = ?cur.loc, "dialplan loop without an exit; hanging up");
        Action::Hangup(Some(500))
    }
}

#[cfg(test)]
mod tests;
