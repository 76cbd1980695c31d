//! The RTP/RTCP relay: one task per session, owning its sockets; commands arrive from the
//! SIP task over a channel and never block it.
//!
//! Forwarding receives into a buffer on the task's stack and sends the same bytes on:
//! no copy of the payload and no allocation per packet. Each side latches onto the
//! address its packets really come from (symmetric RTP), so phones behind NAT get their
//! audio back; until the first packet, the address from the SDP is used.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::media::{g711, MediaCommand, MediaEvent, SessionId};

/// Packet counters of one session, readable by `ctl calls` while the relay writes them.
#[derive(Debug, Default)]
pub struct Counters {
    /// RTP packets from the A party forwarded to B (or echoed back).
    pub a_to_b: AtomicU64,
    /// RTP packets from the B party forwarded to A.
    pub b_to_a: AtomicU64,
}

/// The relay's public face: the SIP task sends commands, `ctl` reads counters.
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::UnboundedSender<MediaCommand>,
    counters: Arc<Mutex<HashMap<SessionId, Arc<Counters>>>>,
}

impl MediaHandle {
    /// Queues a command (never blocks the caller).
    pub fn send(&self, cmd: MediaCommand) {
        let _ = self.tx.send(cmd);
    }

    /// Packets relayed so far in a session, (A to B, B to A).
    pub fn packets(&self, id: SessionId) -> Option<(u64, u64)> {
        let map = self.counters.lock().ok()?;
        let c = map.get(&id)?;
        Some((
            c.a_to_b.load(Ordering::Relaxed),
            c.b_to_a.load(Ordering::Relaxed),
        ))
    }
}

/// Starts the relay; its sockets bind on `ip`; events go to `events`.
pub fn start(ip: IpAddr, events: mpsc::UnboundedSender<MediaEvent>) -> MediaHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(run(ip, rx, counters.clone(), events));
    MediaHandle { tx, counters }
}

struct Session {
    remote_b: watch::Sender<Option<SocketAddr>>,
    /// G.711 conversion (A's payload type, B's), when the legs share no law.
    transcode: watch::Sender<Option<(u8, u8)>>,
    /// Commands for a local session (echo, play).
    local: Option<mpsc::UnboundedSender<LocalCmd>>,
    task: tokio::task::JoinHandle<()>,
    /// A dial from the local session: its B side, bound and waiting for the caller's
    /// sockets, which the local session keeps until B answers.
    dialing: Option<Dialing>,
}

/// The B side of a bridge whose caller is still in its local session.
struct Dialing {
    task: tokio::task::JoinHandle<()>,
    handover: oneshot::Sender<ASide>,
    counters: Arc<Counters>,
}

/// What a local session hands its bridge: the caller's RTP and RTCP sockets and where the
/// caller's RTP was last heard from.
type ASide = ((UdpSocket, UdpSocket), Option<SocketAddr>);

enum LocalCmd {
    Echo,
    /// A prompt, whether a key press cuts it short, and its sequence number.
    Play(std::path::PathBuf, bool, u64),
    /// Stop the prompt (reported as finished).
    Stop,
    /// Start recording the caller.
    Record(Recording),
    /// End the recording.
    StopRecord,
    /// The session is over: save what is recorded and end.
    Close,
    /// B answered: give the caller's sockets to the bridge, save what is recorded, and end.
    Handover(oneshot::Sender<ASide>),
    /// Play to this address, in this payload type (or to nobody).
    Peer(Option<SocketAddr>, u8),
}

/// A recording under way.
struct Recording {
    path: std::path::PathBuf,
    /// Limits, in samples.
    max: usize,
    silence: usize,
    index: Option<(std::path::PathBuf, String)>,
    seq: u64,
    samples: Vec<i16>,
    /// Quiet samples in a row at the end.
    quiet: usize,
    /// When the caller's last packet came, and its RTP timestamp: a phone with silence
    /// suppression sends nothing while the caller is quiet, and that quiet must still count
    /// (by the clock when nothing comes at all) and be kept in place (by the timestamps,
    /// which late or bunched packets do not disturb).
    last_heard: tokio::time::Instant,
    last_ts: Option<u32>,
}

impl Recording {
    /// Adds a frame; whether a limit is reached.
    fn push(&mut self, pcm: &[i16]) -> bool {
        self.samples.extend_from_slice(pcm);
        let level =
            pcm.iter().map(|&x| i32::from(x).abs()).sum::<i32>() / (pcm.len().max(1) as i32);
        self.quiet = if level < QUIET {
            self.quiet + pcm.len()
        } else {
            0
        };
        self.samples.len() >= self.max || (self.silence > 0 && self.quiet >= self.silence)
    }
}

/// Mean absolute level below which a packet counts as quiet (about -45 dBm0).
const QUIET: i32 = 150;

/// Writes a finished recording (off the media task's thread: a slow disk must not delay
/// audio) and reports it. Trailing quiet is trimmed.
fn finish_recording(id: SessionId, mut r: Recording, events: mpsc::UnboundedSender<MediaEvent>) {
    let keep = r.samples.len().saturating_sub(r.quiet);
    r.samples.truncate(keep);
    let ms = r.samples.len() as u64 / 8;
    tokio::task::spawn_blocking(move || {
        // Nothing said: no file, no message in the box.
        if ms == 0 {
            let _ = events.send(MediaEvent::RecordDone {
                id,
                seq: r.seq,
                ms,
                saved: false,
            });
            return;
        }
        // Written aside and renamed into place, so that a file under its real name is
        // always whole (a greeting being replaced keeps playing the old one meanwhile).
        let part = r.path.with_extension("wav.part");
        let wrote = r
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&part, crate::media::wav::encode_pcm16(&r.samples)))
            .and_then(|()| std::fs::rename(&part, &r.path));
        if wrote.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        let saved = match wrote {
            Ok(()) => {
                if let Some((index, line)) = &r.index {
                    use std::io::Write as _;
                    // The caller's part of the line is written by the endpoint; the length
                    // is only known here.
                    let appended = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(index)
                        .and_then(|mut f| writeln!(f, "{line},\"ms\":{ms}}}"));
                    if let Err(e) = appended {
                        tracing::error!(file = %index.display(), error = %e, "could not index the recording");
                    }
                }
                tracing::info!(file = %r.path.display(), ms, "recording saved");
                true
            }
            Err(e) => {
                tracing::error!(file = %r.path.display(), error = %e, "could not save the recording");
                false
            }
        };
        let _ = events.send(MediaEvent::RecordDone {
            id,
            seq: r.seq,
            ms,
            saved,
        });
    });
}

/// What a local session speaks with the caller.
struct LocalMedia {
    /// Payload type of our prompts (0 = PCMU, 8 = PCMA).
    pt: u8,
    /// The caller's telephone-event payload type.
    te_pt: Option<u8>,
    /// Where the caller wants RTP, from its SDP (until latched).
    a_remote: Option<SocketAddr>,
    /// The relay's decoded prompts.
    prompts: PromptCache,
}

type CounterMap = Arc<Mutex<HashMap<SessionId, Arc<Counters>>>>;

async fn run(
    ip: IpAddr,
    mut rx: mpsc::UnboundedReceiver<MediaCommand>,
    counters: CounterMap,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let mut sessions: HashMap<SessionId, Session> = HashMap::new();
    let prompts = PromptCache::default();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            MediaCommand::Open {
                id,
                a_port,
                b_port,
                a_remote,
            } => {
                if let Some(s) = sessions.get_mut(&id).filter(|s| s.local.is_some()) {
                    // The caller stays with its local session until B answers. An earlier
                    // dial's B side is gone before this one binds (its port is free again).
                    if let Some(old) = s.dialing.take() {
                        old.task.abort();
                        let _ = old.task.await;
                    }
                    let b = match bind_pair(ip, b_port) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(session = id.0, b_port, error = %e, "cannot bind RTP ports; this call has no audio once answered");
                            continue;
                        }
                    };
                    let (wtx, wrx) = watch::channel(None);
                    let (ttx, trx) = watch::channel(None);
                    let (handover, a_rx) = oneshot::channel();
                    let counters = Arc::new(Counters::default());
                    let c = counters.clone();
                    let task = tokio::spawn(async move {
                        let Some((a, a_remote)) = wait_for_caller(a_rx, &b).await else {
                            return;
                        };
                        bridge(a, b, a_remote, wrx, trx, c).await;
                    });
                    s.remote_b = wtx;
                    s.transcode = ttx;
                    s.dialing = Some(Dialing {
                        task,
                        handover,
                        counters,
                    });
                    continue;
                }
                if let Some(old) = sessions.remove(&id) {
                    old.task.abort();
                    let _ = old.task.await;
                }
                let socks = match bind_pair(ip, a_port)
                    .and_then(|a| Ok((a, bind_pair(ip, b_port)?)))
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(session = id.0, a_port, b_port, error = %e, "cannot bind RTP ports; this call has no audio");
                        continue;
                    }
                };
                let c = Arc::new(Counters::default());
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, c.clone());
                }
                let (wtx, wrx) = watch::channel(None);
                let (ttx, trx) = watch::channel(None);
                let task = tokio::spawn(bridge(socks.0, socks.1, a_remote, wrx, trx, c));
                sessions.insert(
                    id,
                    Session {
                        remote_b: wtx,
                        transcode: ttx,
                        local: None,
                        task,
                        dialing: None,
                    },
                );
            }
            MediaCommand::Local {
                id,
                a_port,
                a_remote,
                pt,
                te_pt,
            } => {
                let (rtp, rtcp) = match bind_pair(ip, a_port) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(session = id.0, a_port, error = %e, "cannot bind RTP port");
                        continue;
                    }
                };
                let c = Arc::new(Counters::default());
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, c.clone());
                }
                let (wtx, _) = watch::channel(None);
                let (ltx, lrx) = mpsc::unbounded_channel();
                let media = LocalMedia {
                    pt,
                    te_pt,
                    a_remote,
                    prompts: prompts.clone(),
                };
                let task = tokio::spawn(local(id, (rtp, rtcp), media, lrx, events.clone(), c));
                sessions.insert(
                    id,
                    Session {
                        remote_b: wtx,
                        transcode: watch::channel(None).0,
                        local: Some(ltx),
                        task,
                        dialing: None,
                    },
                );
            }
            MediaCommand::LocalPeer { id, addr, pt } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Peer(addr, pt));
                }
            }
            MediaCommand::Echo { id } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Echo);
                }
            }
            MediaCommand::Play {
                id,
                path,
                barge_in,
                seq,
            } => match sessions.get(&id).and_then(|s| s.local.as_ref()) {
                Some(l) => {
                    let _ = l.send(LocalCmd::Play(path, barge_in, seq));
                }
                None => {
                    let _ = events.send(MediaEvent::PlayDone {
                        id,
                        seq,
                        played: false,
                    });
                }
            },
            MediaCommand::Record {
                id,
                path,
                max,
                silence,
                index,
                seq,
            } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Record(Recording {
                        path,
                        max: (max.as_millis() as usize) * 8,
                        silence: (silence.as_millis() as usize) * 8,
                        index,
                        seq,
                        samples: Vec::new(),
                        quiet: 0,
                        last_heard: tokio::time::Instant::now(),
                        last_ts: None,
                    }));
                }
            }
            MediaCommand::StopRecord { id } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::StopRecord);
                }
            }
            MediaCommand::StopPlay { id } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Stop);
                }
            }
            MediaCommand::SetRemoteB { id, addr } => {
                if let Some(s) = sessions.get(&id) {
                    let _ = s.remote_b.send(Some(addr));
                }
            }
            MediaCommand::Transcode { id, a_pt, b_pt } => {
                if let Some(s) = sessions.get(&id) {
                    let _ = s.transcode.send(Some((a_pt, b_pt)));
                }
            }
            MediaCommand::Connect { id } => {
                let Some(s) = sessions.get_mut(&id) else {
                    continue;
                };
                let (Some(d), Some(l)) = (s.dialing.take(), s.local.take()) else {
                    tracing::warn!(session = id.0, "nothing to connect: no bridge waiting");
                    continue;
                };
                let _ = l.send(LocalCmd::Handover(d.handover));
                // The local task ends by itself once it has handed over.
                s.task = d.task;
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, d.counters);
                }
            }
            MediaCommand::CloseB { id } => {
                // Awaited, so the B port is unbound before the endpoint hands it out again.
                if let Some(d) = sessions.get_mut(&id).and_then(|s| s.dialing.take()) {
                    d.task.abort();
                    let _ = d.task.await;
                }
            }
            MediaCommand::Close { id } => {
                if let Some(s) = sessions.remove(&id) {
                    if let Some(d) = s.dialing {
                        d.task.abort();
                        let _ = d.task.await;
                    }
                    match s.local {
                        // A local session ends by itself, saving a recording under way.
                        Some(l) if l.send(LocalCmd::Close).is_ok() => {}
                        _ => s.task.abort(),
                    }
                }
                if let Ok(mut m) = counters.lock() {
                    m.remove(&id);
                }
            }
        }
    }
}

/// Until the local session hands the caller's sockets over: B's packets (early media,
/// which a caller already answered does not hear) are read and dropped, so the bridge
/// does not start with a backlog of them. `None` if the local session ended instead.
async fn wait_for_caller(
    mut a: oneshot::Receiver<ASide>,
    (b_rtp, b_rtcp): &(UdpSocket, UdpSocket),
) -> Option<ASide> {
    let (mut buf, mut cbuf) = ([0u8; 2048], [0u8; 2048]);
    loop {
        tokio::select! {
            r = &mut a => return r.ok(),
            _ = b_rtp.recv_from(&mut buf) => {}
            _ = b_rtcp.recv_from(&mut cbuf) => {}
        }
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let bind = |p: u16| -> std::io::Result<UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, p))?;
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s)
    };
    Ok((bind(port)?, bind(port + 1)?))
}

/// RTCP goes to the port above the RTP one unless latched otherwise (RFC 3550 §11).
fn rtcp_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

async fn bridge(
    a: (UdpSocket, UdpSocket),
    b: (UdpSocket, UdpSocket),
    a_sdp: Option<SocketAddr>,
    mut b_sdp: watch::Receiver<Option<SocketAddr>>,
    mut transcode: watch::Receiver<Option<(u8, u8)>>,
    c: Arc<Counters>,
) {
    let mut tc: Option<(u8, u8)> = None;
    let (a_rtp, a_rtcp) = a;
    let (b_rtp, b_rtcp) = b;
    // Where to send to each side: from SDP until the side's own packets say otherwise.
    let mut to_a = a_sdp;
    let mut to_a_rtcp = a_sdp.map(rtcp_of);
    let mut to_b: Option<SocketAddr> = None;
    let mut to_b_rtcp: Option<SocketAddr> = None;
    let (mut a_latched, mut b_latched) = (false, false);
    let mut buf_a = [0u8; 2048];
    let mut buf_b = [0u8; 2048];
    let mut buf_ac = [0u8; 2048];
    let mut buf_bc = [0u8; 2048];
    loop {
        tokio::select! {
            r = a_rtp.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { continue };
                if !a_latched { to_a = Some(from); a_latched = true; }
                if let Some(dst) = to_b {
                    if let Some((a_pt, b_pt)) = tc {
                        g711::transcode_rtp(&mut buf_a[..n], a_pt, b_pt);
                    }
                    let _ = b_rtp.try_send_to(&buf_a[..n], dst);
                    c.a_to_b.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = b_rtp.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { continue };
                if !b_latched { to_b = Some(from); b_latched = true; }
                if let Some(dst) = to_a {
                    if let Some((a_pt, b_pt)) = tc {
                        g711::transcode_rtp(&mut buf_b[..n], b_pt, a_pt);
                    }
                    let _ = a_rtp.try_send_to(&buf_b[..n], dst);
                    c.b_to_a.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = a_rtcp.recv_from(&mut buf_ac) => {
                let Ok((n, from)) = r else { continue };
                to_a_rtcp = Some(from);
                if let Some(dst) = to_b_rtcp { let _ = b_rtcp.try_send_to(&buf_ac[..n], dst); }
            }
            r = b_rtcp.recv_from(&mut buf_bc) => {
                let Ok((n, from)) = r else { continue };
                to_b_rtcp = Some(from);
                if let Some(dst) = to_a_rtcp { let _ = a_rtcp.try_send_to(&buf_bc[..n], dst); }
            }
            ch = transcode.changed() => {
                if ch.is_err() { return; }
                tc = *transcode.borrow();
            }
            ch = b_sdp.changed() => {
                if ch.is_err() { return; }
                let addr = *b_sdp.borrow();
                if !b_latched {
                    to_b = addr;
                    to_b_rtcp = addr.map(rtcp_of);
                }
            }
        }
    }
}

/// Decodes a G.711 RTP packet's payload into `out` (reused; no allocation once grown).
/// False for other payload types.
fn decode_g711(pkt: &[u8], out: &mut Vec<i16>) -> bool {
    let Some(h) = crate::media::rtp::read(pkt) else {
        return false;
    };
    let payload = &pkt[h.payload];
    out.clear();
    match h.pt {
        0 => out.extend(payload.iter().map(|&b| g711::ulaw_decode(b))),
        8 => out.extend(payload.iter().map(|&b| g711::alaw_decode(b))),
        _ => return false,
    }
    true
}

/// Prompts and music decoded once and shared by every session that plays them: keyed by
/// path and checked against the file's size and modified time, so an admin's new
/// recording is heard at its next play. Bounded: past [`PromptCache::MAX_SAMPLES`] it
/// starts afresh (the voicemail menu plays each message once; music stays hot).
#[derive(Clone, Default)]
pub(crate) struct PromptCache(Arc<Mutex<PromptMap>>);

type PromptMap = HashMap<std::path::PathBuf, (PromptStamp, Arc<[i16]>)>;
type PromptStamp = (u64, Option<std::time::SystemTime>);

impl PromptCache {
    /// 64 MB of samples.
    const MAX_SAMPLES: usize = 32 << 20;

    /// The prompt's samples, from the cache or read and decoded now. Blocking (a stat,
    /// and a read on a miss): called on the blocking pool, never on a session's task.
    fn get(&self, path: &std::path::Path) -> Option<Arc<[i16]>> {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        if let (Some(stamp), Ok(map)) = (stamp, self.0.lock()) {
            if let Some((s, samples)) = map.get(path) {
                if *s == stamp {
                    return Some(samples.clone());
                }
            }
        }
        let samples: Arc<[i16]> = load_prompt(path)?.into();
        if let (Some(stamp), Ok(mut map)) = (stamp, self.0.lock()) {
            let held: usize = map.values().map(|(_, s)| s.len()).sum();
            if held + samples.len() > Self::MAX_SAMPLES {
                map.clear();
            }
            map.insert(path.to_path_buf(), (stamp, samples.clone()));
        }
        Some(samples)
    }

    /// Number of prompts held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }
}

/// Reads a prompt as 8 kHz mono 16-bit samples (any WAV the decoder takes); `None`, and
/// a log line, if it cannot: the call goes on without it rather than in silence.
fn load_prompt(path: &std::path::Path) -> Option<Vec<i16>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "prompt missing or unreadable; skipped");
            return None;
        }
    };
    match crate::media::wav::decode(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "prompt not playable; skipped");
            None
        }
    }
}

/// A prompt's samples, looked up (and on a miss read and decoded) on the blocking pool,
/// so a session's task never waits on the disk.
async fn load_off_task(cache: &PromptCache, path: std::path::PathBuf) -> Option<Arc<[i16]>> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || cache.get(&path))
        .await
        .ok()
        .flatten()
}

/// A session with the caller alone: idle (absorbing its audio), echoing, or playing.
async fn local(
    id: SessionId,
    (rtp, rtcp): (UdpSocket, UdpSocket),
    media: LocalMedia,
    mut cmds: mpsc::UnboundedReceiver<LocalCmd>,
    events: mpsc::UnboundedSender<MediaEvent>,
    c: Arc<Counters>,
) {
    let LocalMedia {
        mut pt,
        te_pt,
        a_remote: a_sdp,
        prompts,
    } = media;
    let mut dtmf = crate::media::DtmfRx::default();
    // A caller that offered no telephone-event sends its keys as tones in the audio.
    let mut inband = te_pt
        .is_none()
        .then(crate::media::inband::InbandDtmf::default);
    let mut pcm: Vec<i16> = Vec::with_capacity(320);
    let mut keys: Vec<char> = Vec::with_capacity(4);
    let mut recording: Option<Recording> = None;
    let mut barge_in = false;
    let mut play_seq = 0u64;
    let mut to_a = a_sdp;
    let mut echo = false;
    let mut buf = [0u8; 2048];
    let mut cbuf = [0u8; 2048];
    // Playback: samples and position; RTP sequence, timestamp and SSRC; a ticker that
    // schedules frames at fixed 20 ms offsets from its start, so pacing does not drift.
    let mut play: Option<(Arc<[i16]>, usize)> = None;
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let ssrc: u32 = rand::random();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pkt = [0u8; 12 + 160];
    loop {
        tokio::select! {
            r = rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                to_a = Some(from);
                keys.clear();
                if let Some(digit) = te_pt.and_then(|te| dtmf.packet(&buf[..n], te)) {
                    keys.push(digit);
                }
                let decoded = (inband.is_some() || recording.is_some()) && decode_g711(&buf[..n], &mut pcm);
                if let (Some(det), true) = (inband.as_mut(), decoded) {
                    det.samples(&pcm, &mut keys);
                }
                if let (Some(r), true) = (recording.as_mut(), decoded) {
                    r.last_heard = tokio::time::Instant::now();
                    let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    let gap = r.last_ts.map_or(0, |prev| ts.wrapping_sub(prev) as usize);
                    r.last_ts = Some(ts);
                    // A jump forward within reason is suppressed silence; anything else
                    // (reordering, a new stream) is not filled.
                    let hole = gap.saturating_sub(pcm.len());
                    let filled = hole > 0 && hole <= r.max && r.push(&vec![0; hole]);
                    if filled || r.push(&pcm) {
                        if let Some(r) = recording.take() {
                            finish_recording(id, r, events.clone());
                        }
                    }
                }
                if keys.contains(&'#') {
                    if let Some(r) = recording.take() {
                        finish_recording(id, r, events.clone());
                    }
                }
                for &digit in &keys {
                    let _ = events.send(MediaEvent::Digit { id, digit });
                    if barge_in && play.take().is_some() {
                        let _ = events.send(MediaEvent::PlayDone { id, seq: play_seq, played: true });
                    }
                }
                if echo {
                    let _ = rtp.try_send_to(&buf[..n], from);
                    c.a_to_b.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = rtcp.recv_from(&mut cbuf) => {
                let Ok((n, from)) = r else { continue };
                if echo {
                    let _ = rtcp.try_send_to(&cbuf[..n], from);
                }
            }
            cmd = cmds.recv() => match cmd {
                None | Some(LocalCmd::Close) => {
                    if let Some(r) = recording.take() {
                        finish_recording(id, r, events.clone());
                    }
                    return;
                }
                Some(LocalCmd::Handover(to)) => {
                    if let Some(r) = recording.take() {
                        finish_recording(id, r, events.clone());
                    }
                    let _ = to.send(((rtp, rtcp), to_a));
                    return;
                }
                Some(LocalCmd::Record(r)) => {
                    echo = false;
                    recording = Some(r);
                    if play.is_none() {
                        tick.reset();
                    }
                }
                Some(LocalCmd::StopRecord) => {
                    if let Some(r) = recording.take() {
                        finish_recording(id, r, events.clone());
                    }
                }
                Some(LocalCmd::Echo) => {
                    echo = true;
                    play = None;
                }
                Some(LocalCmd::Peer(addr, new_pt)) => {
                    to_a = addr;
                    pt = new_pt;
                }
                Some(LocalCmd::Stop) => {
                    if play.take().is_some() {
                        let _ = events.send(MediaEvent::PlayDone { id, seq: play_seq, played: true });
                    }
                }
                Some(LocalCmd::Play(path, cut, seq)) => match load_off_task(&prompts, path).await {
                    Some(samples) => {
                        barge_in = cut;
                        play_seq = seq;
                        play = Some((samples, 0));
                        tick.reset();
                    }
                    None => {
                        let _ = events.send(MediaEvent::PlayDone { id, seq, played: false });
                    }
                },
            },
            _ = tick.tick(), if play.is_some() || recording.is_some() => {
                // Nothing from the caller for as long as the silence limit (or past the
                // longest recording): done.
                let over = recording.as_ref().is_some_and(|r| {
                    let quiet = r.last_heard.elapsed().as_millis() as usize * 8;
                    (r.silence > 0 && r.quiet + quiet >= r.silence) || r.samples.len() + quiet >= r.max
                });
                if over {
                    if let Some(r) = recording.take() {
                        finish_recording(id, r, events.clone());
                    }
                }
                let Some((samples, pos)) = play.as_mut() else { continue };
                if *pos >= samples.len() {
                    play = None;
                    let _ = events.send(MediaEvent::PlayDone { id, seq: play_seq, played: true });
                    continue;
                }
                pkt[0] = 0x80;
                pkt[1] = pt & 0x7f;
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
                for (i, slot) in pkt[12..].iter_mut().enumerate() {
                    // The last frame is padded with silence.
                    let s = samples.get(*pos + i).copied().unwrap_or(0);
                    *slot = if pt == 8 { g711::alaw(s) } else { g711::ulaw(s) };
                }
                *pos += 160;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                if let Some(dst) = to_a {
                    let _ = rtp.try_send_to(&pkt, dst);
                    c.b_to_a.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_for_recording_and_keys_reads_only_the_payload() {
        // One CSRC, a one-word header extension, two μ-law bytes, three of padding:
        // only the two bytes are audio.
        let mut p = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        p.extend([9; 4]);
        p.extend([0xBE, 0xDE, 0, 1, 0x11, 0x22, 0x33, 0x44]);
        p.extend([0x00, 0x80]);
        p.extend([0, 0, 3]);
        let mut out = Vec::new();
        assert!(decode_g711(&p, &mut out));
        assert_eq!(out, vec![g711::ulaw_decode(0x00), g711::ulaw_decode(0x80)]);
        // A-law likewise; other payload types and broken packets decode to nothing.
        p[1] = 8;
        assert!(decode_g711(&p, &mut out));
        assert_eq!(out, vec![g711::alaw_decode(0x00), g711::alaw_decode(0x80)]);
        p[1] = 101;
        assert!(!decode_g711(&p, &mut out));
        assert!(!decode_g711(&p[..20], &mut out));
    }

    #[test]
    fn prompts_are_decoded_once_and_again_only_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moh.wav");
        std::fs::write(&path, crate::media::wav::encode_pcm16(&[1, 2, 3])).unwrap();
        let cache = PromptCache::default();
        let first = cache.get(&path).unwrap();
        assert_eq!(&first[..], &[1, 2, 3]);
        let again = cache.get(&path).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        // The admin records a new one: its next play hears it.
        std::fs::write(&path, crate::media::wav::encode_pcm16(&[4, 5, 6, 7])).unwrap();
        assert_eq!(&cache.get(&path).unwrap()[..], &[4, 5, 6, 7]);
        assert_eq!(cache.len(), 1);
        // Missing or unplayable: nothing, and nothing kept.
        assert!(cache.get(&dir.path().join("none.wav")).is_none());
        std::fs::write(dir.path().join("bad.wav"), b"RIFF").unwrap();
        assert!(cache.get(&dir.path().join("bad.wav")).is_none());
        assert_eq!(cache.len(), 1);
    }
}
