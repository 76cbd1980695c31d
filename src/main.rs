//! The `switchboard` command: `run`, `check`, `ctl`. Parses arguments, loads the config and
//! hands over to the library; nothing else lives here.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use switchboard::config::{self, Config, Listen};
use switchboard::ctl::{self, Request, Response};

/// On-premises SIP PBX with IVR and ACD.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the PBX until SIGINT/SIGTERM.
    Run {
        /// Config file. Default: config/switchboard.toml in the working directory, or the
        /// built-in copy of it when that file does not exist.
        #[arg(long)]
        config: Option<PathBuf>,
        /// SIP listener PROTO:ADDR:PORT (udp or tcp); repeat for several. Replaces
        /// server.listen. Port 0 picks a free port.
        #[arg(long = "sip-listen", value_name = "PROTO:ADDR:PORT")]
        sip_listen: Vec<String>,
        /// RTP port range LOW-HIGH. Replaces rtp.ports.
        #[arg(long = "rtp-ports", value_name = "LOW-HIGH")]
        rtp_ports: Option<String>,
        /// State directory (control socket, store). Replaces server.state_dir.
        #[arg(long = "state-dir", value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Validate the config and exit non-zero with file:line:column on any error.
    Check {
        /// Config file (default as for `run`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Talk to a running instance through its control socket.
    Ctl {
        /// State directory of the instance (default: server.state_dir of the config).
        #[arg(long = "state-dir", value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Config file, to find the state directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: CtlCmd,
    },
}

#[derive(Subcommand)]
enum CtlCmd {
    /// List registered contacts.
    Registrations,
    /// List live calls.
    Calls,
    /// Re-read the config and dialplan (as SIGHUP does); live calls keep theirs.
    Reload,
    /// Show health and counters.
    Status,
    /// ACD queues: callers waiting, agents by state, service level, ASA, AHT.
    Queues,
    /// ACD agents and their states.
    Agents,
    /// Each extension: registered contacts, idle/ringing/busy, do not disturb, forwards.
    Lines,
    /// Sources banned for failing authentication too often, and those failing now.
    Bans,
    /// Lift the ban on a source address (and forget its failures).
    Unban {
        /// The address, as `ctl bans` lists it.
        addr: std::net::IpAddr,
    },
    /// Log an agent in or out, or pause it (with a reason code) or unpause it.
    Agent {
        /// The agent: its extension or ID, or the extension an agent by ID is logged in at.
        agent: String,
        /// login, logout, pause or unpause.
        action: String,
        /// Reason code for a pause.
        reason: Option<String>,
    },
}

const DEFAULT_CONFIG: &str = "config/switchboard.toml";

/// Loads the config named, or the default file, or the embedded copy.
fn load(path: Option<&Path>) -> Result<Config, config::ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None if Path::new(DEFAULT_CONFIG).exists() => Config::load(Path::new(DEFAULT_CONFIG)),
        None => {
            eprintln!("note: {DEFAULT_CONFIG} not found; using the built-in default configuration");
            Config::from_str(config::EMBEDDED, "<built-in config/switchboard.toml>")
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Check { config } => match load(config.as_deref()) {
            Ok(c) => {
                println!(
                    "config OK: domain {}, {} listener(s), {} extension(s)",
                    c.domain,
                    c.listen.len(),
                    c.users.len()
                );
                for w in &c.warnings {
                    println!("warning: {w}");
                }
                let demo = c.demo_users();
                if !demo.is_empty() {
                    println!(
                        "warning: extensions {} use the shipped demo passwords or voicemail PINs; they work from loopback only",
                        demo.join(", ")
                    );
                }
                if let Err(e) = c.check_exposure() {
                    println!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprint!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Cmd::Run {
            config,
            sip_listen,
            rtp_ports,
            state_dir,
        } => {
            // What `run` reads now is what a reload reads again: the same file (or the
            // built-in copy) with the same overrides.
            let path = match config {
                Some(p) => Some(p),
                None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
                None => {
                    eprintln!("note: {DEFAULT_CONFIG} not found; using the built-in default configuration");
                    None
                }
            };
            let listen = if sip_listen.is_empty() {
                None
            } else {
                Some(
                    sip_listen
                        .iter()
                        .map(|s| {
                            Listen::parse(s).map_err(|m| anyhow::anyhow!("--sip-listen {s}: {m}"))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            let rtp_ports = match rtp_ports {
                Some(r) => Some(
                    config::parse_port_range(&r)
                        .map_err(|m| anyhow::anyhow!("--rtp-ports: {m}"))?,
                ),
                None => None,
            };
            let source = config::ConfigSource {
                path,
                listen,
                rtp_ports,
                state_dir,
            };
            let cfg = match source.load() {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    eprintln!("switchboard did not start: fix the config and run again.");
                    return Ok(ExitCode::FAILURE);
                }
            };
            init_tracing();
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            switchboard::driver::run(cfg, source)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ctl {
            state_dir,
            config,
            json,
            command,
        } => {
            let dir = match state_dir {
                Some(d) => d,
                None => {
                    load(config.as_deref())
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .state_dir
                }
            };
            let req = match command {
                CtlCmd::Registrations => Request::Registrations,
                CtlCmd::Calls => Request::Calls,
                CtlCmd::Reload => Request::Reload,
                CtlCmd::Status => Request::Status,
                CtlCmd::Queues => Request::Queues,
                CtlCmd::Agents => Request::Agents,
                CtlCmd::Lines => Request::Lines,
                CtlCmd::Bans => Request::Bans,
                CtlCmd::Unban { addr } => Request::Unban { addr },
                CtlCmd::Agent {
                    agent,
                    action,
                    reason,
                } => {
                    use switchboard::acd::AgentOp;
                    let op = match action.as_str() {
                        "login" => AgentOp::Login,
                        "logout" => AgentOp::Logout,
                        "pause" => AgentOp::Pause(reason.unwrap_or_default()),
                        "unpause" => AgentOp::Unpause,
                        other => anyhow::bail!(
                            "unknown agent action `{other}`: login, logout, pause [REASON] or unpause"
                        ),
                    };
                    Request::Agent { agent, op }
                }
            };
            let resp = ctl::call(&dir, &req).context("ctl")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
                return Ok(ExitCode::SUCCESS);
            }
            match resp {
                Response::Registrations(list) => {
                    println!(
                        "{:<28} {:<36} {:<26} {:>7}  USER-AGENT",
                        "AOR", "CONTACT", "SOURCE", "EXPIRES"
                    );
                    for r in &list {
                        println!(
                            "{:<28} {:<36} {:<26} {:>6}s  {}",
                            r.aor, r.contact, r.source, r.expires_in, r.user_agent
                        );
                    }
                    println!("{} registration(s)", list.len());
                }
                Response::Reloaded { restart_needed } => {
                    println!("reloaded: new calls use the new configuration and dialplan");
                    if !restart_needed.is_empty() {
                        println!(
                            "changed but applied only after a restart: {}",
                            restart_needed.join(", ")
                        );
                    }
                }
                Response::Calls(list) => {
                    println!(
                        "{:>6} {:<12} {:<14} {:<13} {:>6}",
                        "CALL", "CALLER", "CALLEE", "STATE", "AGE"
                    );
                    for c in &list {
                        println!(
                            "{:>6} {:<12} {:<14} {:<13} {:>5}s",
                            c.id, c.caller, c.callee, c.state, c.age_s
                        );
                        for m in &c.moves {
                            println!("{:>6} {}", "", m.line());
                        }
                        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                        for l in &c.legs {
                            println!(
                                "{:>6} {:<8} rtp {:<6} in {:<8} bridge {:<6} by {:<9} {}",
                                "",
                                l.role,
                                dash(l.rtp_port.map(|p| p.to_string())),
                                dash(l.rtp_packets.map(|p| p.to_string())),
                                dash(l.bridge.map(|b| b.to_string())),
                                l.controller,
                                l.party
                            );
                        }
                    }
                    println!("{} call(s)", list.len());
                }
                Response::Status(s) => {
                    println!("switchboard {} up {}s", s.version, s.uptime_s);
                    println!("listening: {}", s.listening.join(" "));
                    println!(
                        "registrations: {}  calls: {}  transactions: {}  tcp connections: {} (refused {}, closed idle {})",
                        s.registrations, s.calls, s.transactions, s.tcp_connections, s.tcp_refused, s.tcp_idle_closed
                    );
                    println!(
                        "messages in: {}  parse errors: {}  registers ok: {}  challenges: {}  auth failures: {}",
                        s.stats.messages_in, s.stats.parse_errors, s.stats.registers_ok, s.stats.challenges, s.stats.auth_failures
                    );
                    println!(
                        "sources banned: {}  messages refused from banned sources: {}  requests over a source's rate: {}",
                        s.stats.bans, s.stats.banned_messages, s.stats.rate_limited
                    );
                    for t in &s.trunk_registrations {
                        println!(
                            "trunk {}: {} (expires in {}s)",
                            t.trunk, t.state, t.expires_in
                        );
                    }
                }
                Response::Queues(list) => {
                    println!(
                        "{:<12} {:<16} {:>7} {:>8} {:>8} {:>8} {:>9} {:>6} {:>7} {:>7}  AGENTS",
                        "QUEUE",
                        "STRATEGY",
                        "WAITING",
                        "LONGEST",
                        "OFFERED",
                        "ANSWERED",
                        "ABANDONED",
                        "SL",
                        "ASA",
                        "AHT"
                    );
                    let pct =
                        |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0}%", v * 100.0));
                    let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}s"));
                    for q in &list {
                        let agents: Vec<String> =
                            q.agents.iter().map(|(s, n)| format!("{s}:{n}")).collect();
                        println!(
                            "{:<12} {:<16} {:>7} {:>7}s {:>8} {:>8} {:>9} {:>6} {:>7} {:>7}  {}",
                            q.name,
                            format!("{:?}", q.strategy),
                            q.waiting,
                            q.longest_wait_s,
                            q.stats.offered,
                            q.stats.answered,
                            q.stats.abandoned,
                            pct(q.service_level),
                            secs(q.asa_s),
                            secs(q.aht_s),
                            agents.join(" ")
                        );
                    }
                }
                Response::Agents(list) => {
                    println!(
                        "{:<10} {:<18} {:<8} {:>8} {:>7} {:>9}  QUEUES",
                        "AGENT", "STATE", "PHONE", "ANSWERED", "TALK", "OCCUPANCY"
                    );
                    for a in &list {
                        println!(
                            "{:<10} {:<18} {:<8} {:>8} {:>6}s {:>9}  {}",
                            a.agent,
                            a.state,
                            a.phone.as_deref().unwrap_or(&a.agent),
                            a.answered,
                            a.talk_s,
                            a.occupancy
                                .map_or("-".into(), |o| format!("{:.0}%", o * 100.0)),
                            a.queues.join(",")
                        );
                    }
                }
                Response::Lines(list) => {
                    println!(
                        "{:<10} {:>8} {:<8} {:<4} {:<14} {:<14} NO ANSWER",
                        "EXTENSION", "CONTACTS", "STATE", "DND", "FORWARD ALL", "BUSY"
                    );
                    for l in &list {
                        let fwd = |f: &Option<String>| f.clone().unwrap_or_else(|| "-".into());
                        println!(
                            "{:<10} {:>8} {:<8} {:<4} {:<14} {:<14} {}",
                            l.extension,
                            l.contacts,
                            l.state,
                            if l.settings.dnd { "on" } else { "-" },
                            fwd(&l.settings.forward_all),
                            fwd(&l.settings.forward_busy),
                            fwd(&l.settings.forward_noanswer)
                        );
                    }
                }
                Response::Bans(list) => {
                    println!(
                        "{:<40} {:>10} {:>9} {:>5}",
                        "SOURCE", "BANNED", "FAILURES", "BANS"
                    );
                    for b in &list {
                        let left = match b.banned_for_s {
                            0 => "-".to_string(),
                            s => format!("{s}s"),
                        };
                        println!(
                            "{:<40} {:>10} {:>9} {:>5}",
                            b.addr.to_string(),
                            left,
                            b.failures,
                            b.bans
                        );
                    }
                    let banned = list.iter().filter(|b| b.banned_for_s > 0).count();
                    println!("{banned} banned, {} watched", list.len() - banned);
                }
                Response::Ok => println!("ok"),
                Response::Error(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("SWITCHBOARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}
