//! The control protocol between `switchboard ctl` and a running instance, and the client
//! side of it. Requests and responses are JSON lines over the Unix socket
//! [`SOCKET_NAME`] in the state directory.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::endpoint::{CallView, RegistrationView, Stats, TrunkRegView};

/// File name of the control socket inside the state directory.
pub const SOCKET_NAME: &str = "switchboard.ctl";

/// A control command.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// List registrations.
    Registrations,
    /// List live calls.
    Calls,
    /// Re-read the config and dialplan; live calls keep theirs.
    Reload,
    /// Health and counters.
    Status,
    /// ACD queues: waiting callers, agents by state, statistics.
    Queues,
    /// ACD agents and their states.
    Agents,
    /// Each extension's line: contacts, busy-lamp state, do not disturb, forwards.
    Lines,
    /// Sources banned for failing authentication, and those failing now.
    Bans,
    /// Lifts the ban on a source.
    Unban {
        /// The source address.
        addr: std::net::IpAddr,
    },
    /// An agent logs in or out, pauses or unpauses.
    Agent {
        /// The agent (extension).
        agent: String,
        /// What it does.
        op: crate::acd::AgentOp,
    },
}

/// Instance status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// Version of the running binary.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Bound listeners.
    pub listening: Vec<String>,
    /// Live bindings.
    pub registrations: usize,
    /// Live calls.
    pub calls: usize,
    /// Live SIP transactions.
    pub transactions: usize,
    /// Open TCP connections.
    pub tcp_connections: usize,
    /// TCP connections refused for being over a cap.
    #[serde(default)]
    pub tcp_refused: u64,
    /// TCP connections closed for being idle.
    #[serde(default)]
    pub tcp_idle_closed: u64,
    /// Counters.
    pub stats: Stats,
    /// Registrations with trunks.
    pub trunk_registrations: Vec<TrunkRegView>,
}

/// A control response.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// Registrations.
    Registrations(Vec<RegistrationView>),
    /// Live calls.
    Calls(Vec<CallView>),
    /// The new configuration is in force; these settings need a restart to apply.
    Reloaded {
        /// Changed settings that only a restart applies.
        restart_needed: Vec<String>,
    },
    /// Status.
    Status(Status),
    /// Queues.
    Queues(Vec<crate::acd::QueueView>),
    /// Agents.
    Agents(Vec<crate::acd::AgentView>),
    /// Extensions' lines.
    Lines(Vec<crate::endpoint::LineView>),
    /// Banned and watched sources.
    Bans(Vec<crate::guard::BanView>),
    /// Done.
    Ok,
    /// The request was not understood.
    Error(String),
}

/// Errors talking to a running instance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// Nothing listens on the socket.
    #[error(
        "cannot reach switchboard at {path}: {source} (is it running with this state directory?)"
    )]
    Connect {
        /// Socket path tried.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange failed midway.
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not understood.
    #[error("bad answer from switchboard: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Sends one request to the instance whose state directory is `state_dir`.
pub fn call(state_dir: &Path, req: &Request) -> Result<Response, CtlError> {
    let path = state_dir.join(SOCKET_NAME);
    let mut s = UnixStream::connect(&path).map_err(|source| CtlError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut out = String::new();
    BufReader::new(s).read_line(&mut out)?;
    Ok(serde_json::from_str(out.trim())?)
}
