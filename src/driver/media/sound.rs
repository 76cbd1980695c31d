//! What legs play: prompts and music decoded once and shared, and our own RTP stream
//! paced at 20 ms frames; also the G.711 decoding that recording and in-band keys read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::media::g711;

/// Samples in one 20 ms frame at 8 kHz.
pub(super) const FRAME: usize = 160;

/// A ticker for frames every 20 ms at fixed offsets from its start (a late tick is made
/// up at once), so a stream's pace does not drift.
pub(super) fn frame_ticker() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tick
}

/// Our own RTP packets (prompts, music on hold): the one being built.
pub(super) struct Packetiser {
    pkt: [u8; 12 + FRAME],
}

impl Packetiser {
    pub(super) fn new() -> Self {
        Self {
            pkt: [0; 12 + FRAME],
        }
    }

    /// The next packet of `out` at `now`: the first frame of `samples` (padded with
    /// silence) in G.711 payload type `pt` (8 = PCMA, otherwise PCMU).
    pub(super) fn frame(
        &mut self,
        samples: &[i16],
        pt: u8,
        out: &mut super::stream::OutStream,
        now: std::time::Instant,
    ) -> &[u8] {
        let (seq, ts, ssrc, changed) = out.own(now);
        let p = &mut self.pkt;
        p[0] = 0x80;
        p[1] = (pt & 0x7f) | if changed { 0x80 } else { 0 };
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        for (i, slot) in p[12..].iter_mut().enumerate() {
            let s = samples.get(i).copied().unwrap_or(0);
            *slot = if pt == 8 {
                g711::alaw(s)
            } else {
                g711::ulaw(s)
            };
        }
        &self.pkt
    }
}

/// Decodes a G.711 RTP packet's payload into `out` (reused; no allocation once grown).
/// False for other payload types.
pub(super) fn decode_g711(pkt: &[u8], out: &mut Vec<i16>) -> bool {
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

/// Prompts and music decoded once and shared by every leg that plays them: keyed by
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
    /// and a read on a miss): called on the blocking pool, never on a leg's task.
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
/// so a leg's task never waits on the disk.
pub(super) async fn load_off_task(
    cache: &PromptCache,
    path: std::path::PathBuf,
) -> Option<Arc<[i16]>> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || cache.get(&path))
        .await
        .ok()
        .flatten()
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
