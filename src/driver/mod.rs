//! The tokio driver: the only place with sockets, the clock, tasks, signals and files.
//!
//! One SIP task owns the [`Endpoint`] (and so every transaction and registration); socket
//! tasks parse what they read, in parallel, and hand messages to it over a channel; it
//! sends what the endpoint emits. The control socket in the state directory answers
//! `switchboard ctl`. Nothing here decides protocol behaviour: that is the endpoint's.

mod ctl_server;
pub mod media;
mod store;
mod transport;

use anyhow::Context as _;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::ctl::{Request as CtlRequest, Response as CtlResponse, Status};
use crate::endpoint::{Endpoint, Output};
use crate::sip::header::Transport;
use crate::sip::parse::ParseError;
use crate::sip::transaction::{Peer, Transmit};
use crate::sip::Message;

/// What socket and control tasks send to the SIP task.
pub(crate) enum Input {
    /// A parsed message (boxed: channel slots stay small).
    Message(Box<Message>, Peer),
    /// A message that failed to parse.
    ParseError(ParseError, Peer),
    /// A stream connection opened: responses to `Peer` go to this writer.
    Connected(Peer, mpsc::Sender<Bytes>),
    /// A stream connection closed.
    Closed(Peer),
    /// A control command.
    Ctl(CtlRequest, oneshot::Sender<CtlResponse>),
    /// An event from the media relay.
    Media(crate::media::MediaEvent),
    /// Stop: end every call (so each leaves its CDR), send what is owed, and return.
    Shutdown,
}

/// Runs switchboard until SIGINT or SIGTERM.
pub fn run(cfg: Config, source: crate::config::ConfigSource) -> anyhow::Result<()> {
    cfg.check_exposure().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchboard")
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move { run_async(cfg, source).await })
}

async fn run_async(cfg: Config, source: crate::config::ConfigSource) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM during start-up must still shut down cleanly.
    let shutdown = shutdown_signal()?;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating state directory {}", cfg.state_dir.display()))?;
    let (tx, rx) = mpsc::channel::<Input>(8192);
    let mut udp: Vec<Arc<UdpSocket>> = Vec::new();
    let mut listening = Vec::new();
    let mut bound: Vec<(Transport, SocketAddr)> = Vec::new();
    let tcp_open = transport::SharedConns::default();
    for l in &cfg.listen {
        match l.transport {
            Transport::Udp => {
                let s = transport::bind_udp(l.addr)
                    .await
                    .with_context(|| format!("binding {l}"))?;
                let local = s.local_addr()?;
                let s = Arc::new(s);
                tokio::spawn(transport::udp_reader(s.clone(), tx.clone()));
                udp.push(s);
                listening.push(format!("udp:{local}"));
                bound.push((Transport::Udp, local));
            }
            Transport::Tcp => {
                let lst = tokio::net::TcpListener::bind(l.addr)
                    .await
                    .with_context(|| format!("binding {l}"))?;
                let local = lst.local_addr()?;
                tokio::spawn(transport::tcp_acceptor(
                    lst,
                    tx.clone(),
                    cfg.tcp,
                    tcp_open.clone(),
                ));
                listening.push(format!("tcp:{local}"));
                bound.push((Transport::Tcp, local));
            }
            _ => anyhow::bail!("transport of {l} is not supported yet"),
        }
    }
    let ctl_path = cfg.state_dir.join(crate::ctl::SOCKET_NAME);
    let ctl = ctl_server::bind(&ctl_path)?;
    tokio::spawn(ctl_server::serve(ctl, tx.clone()));
    for l in &listening {
        tracing::info!(listen = %l, "SIP listening");
    }

    let cdr_path = cfg.state_dir.join(&cfg.cdr_db);
    let store = store::Store::open(&cdr_path)?;
    // Media binds on the address of the first listener (loopback in the shipped config).
    let media_ip = bound
        .first()
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |b| b.1.ip());
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let media = media::start(media_ip, ev_tx);
    let to_sip = tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            if to_sip.send(Input::Media(ev)).await.is_err() {
                return;
            }
        }
    });

    let now = Instant::now();
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let mut ep = Endpoint::new(&cfg, now, wall_ms, rand::random(), secret);
    ep.set_listeners(bound);
    let boxes = crate::voicemail::load(&cfg.state_dir.join("voicemail"));
    tracing::info!(boxes = boxes.len(), "voicemail boxes loaded");
    ep.set_mailboxes(boxes);
    // Agents by ID sit at the phones they were at before a restart, then callback
    // requests kept from before it join their queues again.
    let agents_path = cfg.state_dir.join("agents.json");
    if let Some(n) = take_back(&agents_path, |json| ep.restore_agents(now, json)) {
        tracing::info!(agents = n, "agent logins taken back");
    }
    // Each extension's do-not-disturb and forwards, as set before a restart.
    let lines_path = cfg.state_dir.join("lines.json");
    if let Some(n) = take_back(&lines_path, |json| ep.restore_lines(now, json)) {
        tracing::info!(extensions = n, "line settings taken back");
    }
    let callbacks_path = cfg.state_dir.join("callbacks.json");
    if let Some(n) = take_back(&callbacks_path, |json| ep.restore_callbacks(now, json)) {
        tracing::info!(requests = n, "callback requests taken back");
    }
    // SIGHUP reloads, as `ctl reload` does.
    {
        let tx = tx.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let (otx, orx) = oneshot::channel();
                if tx.send(Input::Ctl(CtlRequest::Reload, otx)).await.is_err() {
                    return;
                }
                match orx.await {
                    Ok(CtlResponse::Error(e)) => {
                        tracing::error!("reload refused, configuration unchanged:\n{e}")
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    }
    let queue_log = queue_log_writer(cfg.state_dir.join("queue_log.jsonl"));
    let callbacks = snapshot_writer(callbacks_path);
    let agents = snapshot_writer(agents_path);
    let lines = snapshot_writer(lines_path);
    let io = Io {
        udp,
        conns: HashMap::new(),
        tcp_open,
        media,
        cdrs: store.sender(),
        queue_log: Some(queue_log.0),
        queue_log_thread: Some(queue_log.1),
        callbacks: Some(callbacks.0),
        callbacks_thread: Some(callbacks.1),
        agents: Some(agents.0),
        agents_thread: Some(agents.1),
        lines: Some(lines.0),
        lines_thread: Some(lines.1),
        config: cfg.clone(),
        source,
    };
    let sip = tokio::spawn(sip_task(ep, rx, io, listening.clone(), now));
    if let Some(interval) = watchdog_interval() {
        tokio::spawn(watchdog(tx.clone(), interval));
    }

    // Machine-readable line for scripts and tests that start us on port 0; printed last,
    // once everything (signal handlers included) is in place.
    println!("switchboard ready: {}", listening.join(" "));
    notify_systemd("READY=1");
    shutdown.await;
    tracing::info!("shutting down");
    notify_systemd("STOPPING=1");
    // Calls are hung up properly (BYE both ways, a CDR each) before the task ends; a SIP
    // task that does not finish in time is stopped anyway.
    let _ = tx.send(Input::Shutdown).await;
    let abort = sip.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(5), sip)
        .await
        .is_err()
    {
        tracing::warn!("SIP task did not stop in time");
        abort.abort();
    }
    // The SIP task is gone, so every record it emitted is queued: write them out.
    store.close();
    let _ = std::fs::remove_file(&ctl_path);
    Ok(())
}

/// Registers SIGTERM and SIGINT now; the returned future completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Tells systemd (Type=notify) about our state, when started by it.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = sock.send_to(state.as_bytes(), path);
    }
}

/// Half the systemd watchdog period, when systemd asked for one.
fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(std::time::Duration::from_micros(usec / 2))
}

/// Pets the systemd watchdog only when the SIP task answers a status request, so a wedged
/// SIP task gets the service restarted.
async fn watchdog(tx: mpsc::Sender<Input>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let (otx, orx) = oneshot::channel();
        if tx.send(Input::Ctl(CtlRequest::Status, otx)).await.is_err() {
            return;
        }
        if tokio::time::timeout(every, orx)
            .await
            .is_ok_and(|r| r.is_ok())
        {
            notify_systemd("WATCHDOG=1");
        }
    }
}

/// What the SIP task executes the endpoint's outputs with.
struct Io {
    udp: Vec<Arc<UdpSocket>>,
    conns: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    /// TCP connections counted against their caps, by the acceptors.
    tcp_open: transport::SharedConns,
    media: media::MediaHandle,
    cdrs: store::CdrSink,
    /// Lines for the queue log, written in order by a thread of their own.
    queue_log: Option<std::sync::mpsc::Sender<String>>,
    queue_log_thread: Option<std::thread::JoinHandle<()>>,
    /// Snapshots of the callback requests waiting, to keep across a restart.
    callbacks: Option<std::sync::mpsc::Sender<String>>,
    callbacks_thread: Option<std::thread::JoinHandle<()>>,
    /// Snapshots of which agent by ID is at which phone, likewise.
    agents: Option<std::sync::mpsc::Sender<String>>,
    agents_thread: Option<std::thread::JoinHandle<()>>,
    /// Snapshots of the extensions' line settings, likewise.
    lines: Option<std::sync::mpsc::Sender<String>>,
    lines_thread: Option<std::thread::JoinHandle<()>>,
    /// The configuration in force, and how to read it again.
    config: Config,
    source: crate::config::ConfigSource,
}

async fn sip_task(
    mut ep: Endpoint,
    mut rx: mpsc::Receiver<Input>,
    mut io: Io,
    listening: Vec<String>,
    started: Instant,
) {
    loop {
        let deadline = ep.poll_timeout();
        let input = match deadline {
            Some(at) => tokio::select! {
                i = rx.recv() => i,
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {
                    ep.handle_timeout(Instant::now());
                    flush(&mut ep, &io);
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(input) = input else { return };
        let now = Instant::now();
        let mut next = Some(input);
        // Batch: take whatever else is already queued before flushing, up to a bound.
        for _ in 0..256 {
            let Some(input) = next.take() else { break };
            match input {
                Input::Message(m, peer) => ep.handle_message(now, *m, peer),
                Input::ParseError(e, peer) => ep.handle_parse_error(&e, peer),
                Input::Connected(peer, w) => {
                    io.conns.insert(peer.addr, w);
                }
                Input::Closed(peer) => {
                    // Whatever is owed to this connection (an error response before the
                    // close, say) goes out before its writer is dropped.
                    flush(&mut ep, &io);
                    io.conns.remove(&peer.addr);
                }
                Input::Ctl(CtlRequest::Reload, reply) => {
                    let _ = reply.send(reload(&mut ep, &mut io, now));
                }
                Input::Ctl(CtlRequest::Unban { addr }, reply) => {
                    let r = if ep.unban(addr) {
                        CtlResponse::Ok
                    } else {
                        CtlResponse::Error(format!("{addr} is neither banned nor watched"))
                    };
                    let _ = reply.send(r);
                }
                Input::Ctl(CtlRequest::Agent { agent, op }, reply) => {
                    let r = match ep.agent_action(now, &agent, op) {
                        Ok(()) => CtlResponse::Ok,
                        Err(e) => CtlResponse::Error(e),
                    };
                    flush(&mut ep, &io);
                    let _ = reply.send(r);
                }
                Input::Ctl(req, reply) => {
                    let _ = reply.send(ctl_answer(&ep, &io, req, now, started, &listening));
                }
                Input::Media(ev) => ep.handle_media_event(now, ev),
                Input::Shutdown => {
                    let calls = ep.call_count();
                    ep.shutdown(now);
                    flush(&mut ep, &io);
                    tracing::info!(calls, "calls ended for shutdown");
                    // Every queue log line and the last callback snapshot written before
                    // the process goes.
                    io.queue_log = None;
                    io.callbacks = None;
                    io.agents = None;
                    io.lines = None;
                    let writers = [
                        io.queue_log_thread.take(),
                        io.callbacks_thread.take(),
                        io.agents_thread.take(),
                        io.lines_thread.take(),
                    ];
                    for h in writers.into_iter().flatten() {
                        let _ = tokio::task::spawn_blocking(move || h.join()).await;
                    }
                    // Give the BYEs a moment on the wire before the sockets close.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        flush(&mut ep, &io);
    }
}

fn ctl_answer(
    ep: &Endpoint,
    io: &Io,
    req: CtlRequest,
    now: Instant,
    started: Instant,
    listening: &[String],
) -> CtlResponse {
    let conns = io.conns.len();
    match req {
        // Handled by the SIP task itself, which may change the endpoint.
        CtlRequest::Reload => CtlResponse::Error("reload is handled elsewhere".into()),
        CtlRequest::Agent { .. } => CtlResponse::Error("agent is handled elsewhere".into()),
        CtlRequest::Unban { .. } => CtlResponse::Error("unban is handled elsewhere".into()),
        CtlRequest::Bans => CtlResponse::Bans(ep.bans(now)),
        CtlRequest::Queues => CtlResponse::Queues(ep.queues(now)),
        CtlRequest::Agents => CtlResponse::Agents(ep.agents(now)),
        CtlRequest::Lines => CtlResponse::Lines(ep.lines(now)),
        CtlRequest::Registrations => CtlResponse::Registrations(ep.registrations(now)),
        CtlRequest::Calls => CtlResponse::Calls(
            ep.calls(now)
                .into_iter()
                .map(|mut c| {
                    for l in &mut c.legs {
                        l.rtp_packets = l.media.and_then(|m| io.media.packets(m));
                    }
                    c
                })
                .collect(),
        ),
        CtlRequest::Status => CtlResponse::Status(Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: now.duration_since(started).as_secs(),
            listening: listening.to_vec(),
            registrations: ep.registration_count(),
            calls: ep.call_count(),
            transactions: ep.transaction_count(),
            tcp_connections: conns,
            tcp_refused: io.tcp_open.lock().map_or(0, |o| o.refused),
            tcp_idle_closed: io.tcp_open.lock().map_or(0, |o| o.idle_closed),
            stats: ep.stats().clone(),
            trunk_registrations: ep.trunk_registrations(now),
        }),
    }
}

/// Re-reads the configuration the way `run` read it. An invalid one changes nothing and
/// comes back with the same message `check` gives.
fn reload(ep: &mut Endpoint, io: &mut Io, now: Instant) -> CtlResponse {
    match io.source.load() {
        Ok(new) => {
            let restart_needed = io.config.restart_needed(&new);
            ep.reload(now, &new);
            if !restart_needed.is_empty() {
                tracing::warn!(
                    ?restart_needed,
                    "these settings changed but apply only after a restart"
                );
            }
            // What needs a restart stays as it is in force.
            let mut kept = new;
            kept.listen = io.config.listen.clone();
            kept.rtp_ports = io.config.rtp_ports;
            kept.domain = io.config.domain.clone();
            kept.state_dir = io.config.state_dir.clone();
            kept.cdr_db = io.config.cdr_db.clone();
            kept.timers = io.config.timers;
            io.config = kept;
            CtlResponse::Reloaded { restart_needed }
        }
        Err(e) => {
            tracing::error!("reload refused, configuration unchanged:\n{e}");
            CtlResponse::Error(e.to_string())
        }
    }
}

/// Appends queue log lines to `path` in order, off the SIP task. A line the disk refuses
/// is logged (with the line, so it is not lost from sight) and the next is tried.
fn queue_log_writer(
    path: std::path::PathBuf,
) -> (std::sync::mpsc::Sender<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let handle = std::thread::spawn(move || {
        use std::io::Write as _;
        let mut file: Option<std::fs::File> = None;
        for line in rx {
            if file.is_none() {
                file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| tracing::error!(file = %path.display(), error = %e, "queue log unavailable"))
                    .ok();
            }
            let written = file
                .as_mut()
                .map(|f| f.write_all(format!("{line}\n").as_bytes()));
            if !matches!(written, Some(Ok(()))) {
                tracing::error!(file = %path.display(), %line, "queue log line not written");
                file = None;
            }
        }
    });
    (tx, handle)
}

/// Hands the state kept in `path` before a restart to `restore`, and how much it took
/// back; nothing if there is no such file. A file that cannot be read or understood is
/// said so in the log, and the PBX starts without it.
fn take_back(
    path: &std::path::Path,
    restore: impl FnOnce(&str) -> Result<usize, String>,
) -> Option<usize> {
    let json = match std::fs::read_to_string(path) {
        Ok(json) => json,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "kept state not readable");
            return None;
        }
    };
    restore(&json)
        .map_err(
            |e| tracing::error!(file = %path.display(), error = %e, "kept state not taken back"),
        )
        .ok()
}

/// Keeps the latest of the snapshots sent in `path`, off the SIP task: each is written to
/// a temporary file and renamed over the last, so a crash leaves one whole snapshot. One
/// the disk refuses is logged in full and the next is tried.
fn snapshot_writer(
    path: std::path::PathBuf,
) -> (std::sync::mpsc::Sender<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let handle = std::thread::spawn(move || {
        let tmp = path.with_extension("json.tmp");
        while let Ok(mut json) = rx.recv() {
            // Only the newest matters.
            while let Ok(newer) = rx.try_recv() {
                json = newer;
            }
            let written = std::fs::write(&tmp, &json).and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::error!(file = %path.display(), error = %e, %json, "state not saved");
            }
        }
    });
    (tx, handle)
}

fn flush(ep: &mut Endpoint, io: &Io) {
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Media(cmd) => io.media.send(cmd),
            Output::Record(r) => io.cdrs.write(r),
            Output::QueueLog(line) => {
                if let Some(q) = &io.queue_log {
                    let _ = q.send(line);
                }
            }
            Output::CallbacksSaved(json) => {
                if let Some(c) = &io.callbacks {
                    let _ = c.send(json);
                }
            }
            Output::AgentsSaved(json) => {
                if let Some(a) = &io.agents {
                    let _ = a.send(json);
                }
            }
            Output::LinesSaved(json) => {
                if let Some(l) = &io.lines {
                    let _ = l.send(json);
                }
            }
            Output::Mailbox(w) => {
                // Off the SIP task: a slow or full disk must not stall signalling.
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = w.apply() {
                        tracing::error!(file = %w.index.display(), error = %e, "voicemail change not saved");
                    }
                });
            }
            Output::Transmit(t) => send(io, t),
        }
    }
}

/// Sends `t` on the socket or connection that reaches its peer.
fn send(io: &Io, t: Transmit) {
    match t.peer.transport {
        Transport::Udp => {
            let Some(sock) = io.udp.iter().find(|s| {
                s.local_addr()
                    .is_ok_and(|a| a.is_ipv4() == t.peer.addr.is_ipv4())
            }) else {
                tracing::warn!(dest = %t.peer.addr, "no UDP socket of that address family");
                return;
            };
            if let Err(e) = sock.try_send_to(&t.bytes, t.peer.addr) {
                tracing::debug!(dest = %t.peer.addr, error = %e, "UDP send failed");
            }
        }
        _ => match io.conns.get(&t.peer.addr) {
            Some(w) => {
                if w.try_send(t.bytes).is_err() {
                    tracing::debug!(dest = %t.peer.addr, "connection writer full or gone");
                }
            }
            None => tracing::debug!(dest = %t.peer.addr, "no connection to send on"),
        },
    }
}
