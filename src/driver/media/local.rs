//! A session with the caller alone (switchboard answered it): idle, echoing, playing
//! prompts (cut short by a key where asked), recording, and reporting keys whether they
//! come as RFC 4733 events or as tones in the audio. Hands its sockets over to a bridge
//! when a dial from it is answered.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::sound::{decode_g711, frame_ticker, load_off_task, Packetiser, PromptCache, FRAME};
use super::{ASide, Counters};
use crate::media::{MediaEvent, SessionId};

pub(super) enum LocalCmd {
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
pub(super) struct Recording {
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
    /// A recording to `path`, at most `max` long, ended by `silence` of quiet (zero: not).
    pub(super) fn new(
        path: std::path::PathBuf,
        max: std::time::Duration,
        silence: std::time::Duration,
        index: Option<(std::path::PathBuf, String)>,
        seq: u64,
    ) -> Self {
        Self {
            path,
            max: (max.as_millis() as usize) * 8,
            silence: (silence.as_millis() as usize) * 8,
            index,
            seq,
            samples: Vec::new(),
            quiet: 0,
            last_heard: tokio::time::Instant::now(),
            last_ts: None,
        }
    }

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
pub(super) struct LocalMedia {
    /// Payload type of our prompts (0 = PCMU, 8 = PCMA).
    pub(super) pt: u8,
    /// The caller's telephone-event payload type.
    pub(super) te_pt: Option<u8>,
    /// Where the caller wants RTP, from its SDP (until latched).
    pub(super) a_remote: Option<SocketAddr>,
    /// The relay's decoded prompts.
    pub(super) prompts: PromptCache,
}

/// A session with the caller alone: idle (absorbing its audio), echoing, or playing.
pub(super) async fn local(
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
    // Playback: samples and position, our stream's RTP numbering, and a ticker that
    // schedules frames at fixed 20 ms offsets from its start, so pacing does not drift.
    let mut play: Option<(Arc<[i16]>, usize)> = None;
    let mut out = Packetiser::new();
    let mut tick = frame_ticker();
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
                // The last frame is padded with silence.
                let pkt = out.frame(samples.get(*pos..).unwrap_or_default(), pt);
                *pos += FRAME;
                if let Some(dst) = to_a {
                    let _ = rtp.try_send_to(pkt, dst);
                    c.b_to_a.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
