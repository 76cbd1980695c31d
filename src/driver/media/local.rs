//! A leg on its own (not in a bridge): idle, echoing, playing prompts (cut short by a
//! key where asked) or music round, recording, and reporting keys whether they come as
//! RFC 4733 events or as tones in the audio. Hands its sockets back when the leg joins a
//! bridge.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::sound::{decode_g711, frame_ticker, load_off_task, Packetiser, PromptCache, FRAME};
use super::LegMedia;
use crate::media::{Keys, LegKey, MediaEvent};

pub(super) enum LocalCmd {
    Echo,
    /// A prompt, whether a key press cuts it short, and its sequence number.
    Play(std::path::PathBuf, bool, u64),
    /// Music, played round until something else is asked.
    Music(std::path::PathBuf),
    /// Stop the prompt (reported as finished).
    Stop,
    /// Start recording the caller.
    Record(Recording),
    /// End the recording.
    StopRecord,
    /// The leg is closed: save what is recorded and end.
    Close,
    /// The leg joins a bridge: save what is recorded, give its sockets back, and end.
    Handover(oneshot::Sender<Box<LegMedia>>),
    /// Where the party wants RTP, from its SDP.
    Remote(SocketAddr),
    /// The law agreed with the party.
    Law(u8),
    /// How the party's keys come, if they are listened for.
    Keys(Option<Keys>),
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
fn finish_recording(leg: LegKey, mut r: Recording, events: mpsc::UnboundedSender<MediaEvent>) {
    let keep = r.samples.len().saturating_sub(r.quiet);
    r.samples.truncate(keep);
    let ms = r.samples.len() as u64 / 8;
    tokio::task::spawn_blocking(move || {
        // Nothing said: no file, no message in the box.
        if ms == 0 {
            let _ = events.send(MediaEvent::RecordDone {
                leg,
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
            leg,
            seq: r.seq,
            ms,
            saved,
        });
    });
}

/// What plays to the leg: samples, where it is in them, and what it reports at the end.
struct Playing {
    samples: Arc<[i16]>,
    pos: usize,
    /// A prompt's sequence number, reported when it ends; music (`None`) goes round.
    seq: Option<u64>,
}

/// A leg on its own: idle (absorbing its audio), echoing, playing or recording, until
/// it is closed or handed to a bridge.
pub(super) async fn local(
    mut m: Box<LegMedia>,
    mut cmds: mpsc::UnboundedReceiver<LocalCmd>,
    events: mpsc::UnboundedSender<MediaEvent>,
    prompts: PromptCache,
) {
    let leg = m.key;
    // A party that offered no telephone-event sends its keys as tones in the audio.
    let inband_of = |keys: Option<Keys>| {
        matches!(keys, Some(Keys::Inband)).then(crate::media::inband::InbandDtmf::default)
    };
    let mut inband = inband_of(m.keys);
    let mut pcm: Vec<i16> = Vec::with_capacity(320);
    let mut keys: Vec<char> = Vec::with_capacity(4);
    let mut recording: Option<Recording> = None;
    let mut barge_in = false;
    let mut echo = false;
    let mut buf = [0u8; 2048];
    let mut cbuf = [0u8; 2048];
    // Playback, our stream's RTP numbering, and a ticker that schedules frames at fixed
    // 20 ms offsets from its start, so pacing does not drift.
    let mut play: Option<Playing> = None;
    let mut out = Packetiser::new();
    let mut tick = frame_ticker();
    loop {
        tokio::select! {
            r = m.rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                // Alone, the leg follows wherever the party's packets come from.
                m.latched = false;
                m.heard(&buf[..n], from);
                keys.clear();
                if let Some(digit) = m.key(&buf[..n]) {
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
                            finish_recording(leg, r, events.clone());
                        }
                    }
                }
                if keys.contains(&'#') {
                    if let Some(r) = recording.take() {
                        finish_recording(leg, r, events.clone());
                    }
                }
                for &digit in &keys {
                    let _ = events.send(MediaEvent::Digit { leg, digit });
                    if barge_in {
                        if let Some(seq) = play.take().and_then(|p| p.seq) {
                            let _ = events.send(MediaEvent::PlayDone { leg, seq, played: true });
                        }
                    }
                }
                if echo {
                    let _ = m.rtp.try_send_to(&buf[..n], from);
                }
            }
            r = m.rtcp.recv_from(&mut cbuf) => {
                let Ok((n, from)) = r else { continue };
                m.heard_rtcp(from);
                if echo {
                    let _ = m.rtcp.try_send_to(&cbuf[..n], from);
                }
            }
            cmd = cmds.recv() => match cmd {
                None | Some(LocalCmd::Close) => {
                    if let Some(r) = recording.take() {
                        finish_recording(leg, r, events.clone());
                    }
                    return;
                }
                Some(LocalCmd::Handover(to)) => {
                    if let Some(r) = recording.take() {
                        finish_recording(leg, r, events.clone());
                    }
                    let _ = to.send(m);
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
                        finish_recording(leg, r, events.clone());
                    }
                }
                Some(LocalCmd::Echo) => {
                    echo = true;
                    play = None;
                }
                Some(LocalCmd::Remote(addr)) => m.set_remote(addr),
                Some(LocalCmd::Law(pt)) => m.pt = Some(pt),
                Some(LocalCmd::Keys(keys)) => {
                    m.keys = keys;
                    inband = inband_of(keys);
                }
                Some(LocalCmd::Stop) => {
                    if let Some(seq) = play.take().and_then(|p| p.seq) {
                        let _ = events.send(MediaEvent::PlayDone { leg, seq, played: true });
                    }
                }
                Some(LocalCmd::Play(path, cut, seq)) => match load_off_task(&prompts, path).await {
                    Some(samples) => {
                        barge_in = cut;
                        play = Some(Playing { samples, pos: 0, seq: Some(seq) });
                        tick.reset();
                    }
                    None => {
                        let _ = events.send(MediaEvent::PlayDone { leg, seq, played: false });
                    }
                },
                Some(LocalCmd::Music(path)) => {
                    echo = false;
                    barge_in = false;
                    // Music that cannot be read leaves the leg in silence; the file's
                    // absence is logged where it is read.
                    play = load_off_task(&prompts, path)
                        .await
                        .filter(|s| !s.is_empty())
                        .map(|samples| Playing { samples, pos: 0, seq: None });
                    tick.reset();
                }
            },
            _ = tick.tick(), if play.is_some() || recording.is_some() => {
                // Nothing from the party for as long as the silence limit (or past the
                // longest recording): done.
                let over = recording.as_ref().is_some_and(|r| {
                    let quiet = r.last_heard.elapsed().as_millis() as usize * 8;
                    (r.silence > 0 && r.quiet + quiet >= r.silence) || r.samples.len() + quiet >= r.max
                });
                if over {
                    if let Some(r) = recording.take() {
                        finish_recording(leg, r, events.clone());
                    }
                }
                let Some(p) = play.as_mut() else { continue };
                if p.pos >= p.samples.len() {
                    match p.seq {
                        None => p.pos = 0,
                        Some(seq) => {
                            play = None;
                            let _ = events.send(MediaEvent::PlayDone { leg, seq, played: true });
                            continue;
                        }
                    }
                }
                // The last frame is padded with silence.
                let law = m.law();
                let now = std::time::Instant::now();
                let pkt = out.frame(p.samples.get(p.pos..).unwrap_or_default(), law, &mut m.out, now);
                p.pos += FRAME;
                if let Some(dst) = m.to {
                    let _ = m.rtp.try_send_to(pkt, dst);
                }
            }
        }
    }
}
