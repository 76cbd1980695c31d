//! Prompt files to 8 kHz mono 16-bit samples: WAV with 16-bit PCM, μ-law or A-law, any
//! sample rate and channel count (mixed down, resampled). Bytes in, samples out; the driver
//! reads the file.

use thiserror::Error;

use super::g711;

/// Why a prompt cannot be played.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WavError {
    /// Not a RIFF/WAVE file, or a chunk is cut short.
    #[error("not a WAV file")]
    NotWav,
    /// A sample format other than 16-bit PCM, μ-law or A-law.
    #[error("unsupported WAV format {format} with {bits} bits (use 16-bit PCM, μ-law or A-law)")]
    Format {
        /// WAVE format tag.
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
}

fn u16le(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32le(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Decodes a WAV file's bytes into 8 kHz mono samples.
pub fn decode(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let (mut fmt, mut data) = (None, None);
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len = u32le(bytes, i + 4).ok_or(WavError::NotWav)? as usize;
        let body = bytes
            .get(i + 8..(i + 8).saturating_add(len).min(bytes.len()))
            .ok_or(WavError::NotWav)?;
        match id {
            b"fmt " => fmt = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        i = i + 8 + len + (len & 1);
    }
    let (fmt, data) = (fmt.ok_or(WavError::NotWav)?, data.ok_or(WavError::NotWav)?);
    let mut format = u16le(fmt, 0).ok_or(WavError::NotWav)?;
    let channels = usize::from(u16le(fmt, 2).ok_or(WavError::NotWav)?.max(1));
    let rate = u32le(fmt, 4).ok_or(WavError::NotWav)?.max(1);
    let bits = u16le(fmt, 14).ok_or(WavError::NotWav)?;
    if format == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag leads the sub-format GUID.
        format = u16le(fmt, 24).ok_or(WavError::NotWav)?;
    }
    let frames: Vec<i16> = match (format, bits) {
        (1, 16) => data
            .chunks_exact(2 * channels)
            .map(|f| mix(f.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]]))))
            .collect(),
        (7, 8) => data
            .chunks_exact(channels)
            .map(|f| mix(f.iter().map(|&b| g711::ulaw_decode(b))))
            .collect(),
        (6, 8) => data
            .chunks_exact(channels)
            .map(|f| mix(f.iter().map(|&b| g711::alaw_decode(b))))
            .collect(),
        _ => return Err(WavError::Format { format, bits }),
    };
    Ok(resample(&frames, rate))
}

/// A WAV file of 8 kHz mono 16-bit PCM samples (what recordings are saved as).
pub fn encode_pcm16(samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn mix(samples: impl Iterator<Item = i16>) -> i16 {
    let (sum, n) = samples.fold((0i32, 0i32), |(s, n), x| (s + i32::from(x), n + 1));
    (sum / n.max(1)) as i16
}

/// To 8 kHz: averaging over each output sample's span when shrinking (a box filter keeps
/// the worst aliasing out), linear interpolation when stretching.
fn resample(input: &[i16], rate: u32) -> Vec<i16> {
    if rate == 8000 || input.is_empty() {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * 8000 / u64::from(rate)) as usize;
    let step = f64::from(rate) / 8000.0;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            if step > 1.0 {
                let (a, b) = (
                    pos as usize,
                    ((pos + step) as usize)
                        .min(input.len())
                        .max(pos as usize + 1),
                );
                mix(input[a..b].iter().copied())
            } else {
                let a = pos as usize;
                let frac = pos - a as f64;
                let x0 = f64::from(input[a]);
                let x1 = f64::from(*input.get(a + 1).unwrap_or(&input[a]));
                (x0 + (x1 - x0) * frac) as i16
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(format.to_le_bytes());
        f.extend(channels.to_le_bytes());
        f.extend(rate.to_le_bytes());
        f.extend((rate * u32::from(channels) * u32::from(bits) / 8).to_le_bytes());
        f.extend((channels * bits / 8).to_le_bytes());
        f.extend(bits.to_le_bytes());
        let mut out = b"RIFF".to_vec();
        out.extend((4 + 8 + f.len() as u32 + 8 + data.len() as u32).to_le_bytes());
        out.extend(b"WAVEfmt ");
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(f);
        out.extend(b"data");
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out
    }

    fn tone(rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (10_000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn pcm_ulaw_alaw_stereo_and_other_rates() {
        let t = tone(8000, 800);
        let pcm: Vec<u8> = t.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(decode(&wav(1, 1, 8000, 16, &pcm)).unwrap(), t);
        let ulaw: Vec<u8> = t.iter().map(|&s| g711::ulaw(s)).collect();
        let got = decode(&wav(7, 1, 8000, 8, &ulaw)).unwrap();
        assert!(got
            .iter()
            .zip(&t)
            .all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() < 400));
        let alaw: Vec<u8> = t.iter().map(|&s| g711::alaw(s)).collect();
        assert_eq!(decode(&wav(6, 1, 8000, 8, &alaw)).unwrap().len(), 800);
        // Stereo 16 kHz: mixed down and halved in length, still a 440 Hz tone.
        let t16 = tone(16000, 1600);
        let st: Vec<u8> = t16
            .iter()
            .flat_map(|s| [s.to_le_bytes(), s.to_le_bytes()].concat())
            .collect();
        let got = decode(&wav(1, 2, 16000, 16, &st)).unwrap();
        assert_eq!(got.len(), 800);
        let crossings = got.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!(
            (85..=91).contains(&crossings),
            "{crossings} zero crossings in 0.1 s of 440 Hz"
        );
        // 48 kHz and 6 kHz too: 100 ms is 800 samples at 8 kHz.
        for rate in [48000u32, 6000] {
            let pcm: Vec<u8> = tone(rate, rate as usize / 10)
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            assert_eq!(
                decode(&wav(1, 1, rate, 16, &pcm)).unwrap().len(),
                800,
                "{rate} Hz"
            );
        }
    }

    #[test]
    fn recordings_round_trip() {
        let t = tone(8000, 1234);
        assert_eq!(decode(&encode_pcm16(&t)).unwrap(), t);
    }

    #[test]
    fn what_is_not_a_playable_wav() {
        assert_eq!(decode(b"not a wav at all"), Err(WavError::NotWav));
        assert_eq!(
            decode(&wav(3, 1, 8000, 32, &[0; 16])),
            Err(WavError::Format {
                format: 3,
                bits: 32
            })
        );
        assert_eq!(decode(&wav(1, 1, 8000, 16, &[])), Ok(vec![]));
        // Truncated files never panic.
        let good = wav(1, 1, 8000, 16, &[1, 2, 3, 4]);
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
        }
    }

    #[test]
    fn channels_are_averaged_rates_resampled_and_laws_decoded_exactly() {
        // Two channels that differ: their mean, not one of them.
        let st: Vec<u8> = [(1000i16, 3000i16), (-500, 1500)]
            .iter()
            .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()].concat())
            .collect();
        assert_eq!(decode(&wav(1, 2, 8000, 16, &st)).unwrap(), [2000, 500]);
        let codes: Vec<u8> = (0..=255).collect();
        let ulaw: Vec<i16> = codes.iter().map(|&c| g711::ulaw_decode(c)).collect();
        assert_eq!(decode(&wav(7, 1, 8000, 8, &codes)).unwrap(), ulaw);
        let alaw: Vec<i16> = codes.iter().map(|&c| g711::alaw_decode(c)).collect();
        assert_eq!(decode(&wav(6, 1, 8000, 8, &codes)).unwrap(), alaw);
        // Stereo μ-law: each frame's two bytes averaged.
        let got = decode(&wav(7, 2, 8000, 8, &[0x80, 0xFF])).unwrap();
        assert_eq!(got, [g711::ulaw_decode(0x80) / 2]);
        // 4 kHz stretched to 8: each sample, then the point halfway to the next.
        let pcm: Vec<u8> = [0i16, 1000, 3000]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        assert_eq!(
            decode(&wav(1, 1, 4000, 16, &pcm)).unwrap(),
            [0, 500, 1000, 2000, 3000, 3000]
        );
        // 16 kHz shrunk to 8: each output the mean of the two inputs it spans.
        let pcm: Vec<u8> = [0i16, 1000, 3000, 5000]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        assert_eq!(decode(&wav(1, 1, 16000, 16, &pcm)).unwrap(), [500, 4000]);
        // 24 kHz: three inputs per output.
        let pcm: Vec<u8> = [3i16, 6, 9, 30, 60, 90]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        assert_eq!(decode(&wav(1, 1, 24000, 16, &pcm)).unwrap(), [6, 60]);
    }

    #[test]
    fn chunks_are_walked_by_their_padded_length_and_extensible_format_is_read() {
        let data: Vec<u8> = [7i16, -7].iter().flat_map(|s| s.to_le_bytes()).collect();
        let plain = wav(1, 1, 8000, 16, &data);
        // An odd-length chunk (padded to even) between the header and "fmt ".
        let mut odd = plain[..12].to_vec();
        odd.extend(b"LIST");
        odd.extend(3u32.to_le_bytes());
        odd.extend([1, 2, 3, 0]);
        odd.extend(&plain[12..]);
        assert_eq!(decode(&odd).unwrap(), [7, -7]);
        // WAVE_FORMAT_EXTENSIBLE with the PCM sub-format.
        let mut f = Vec::new();
        f.extend(0xFFFEu16.to_le_bytes());
        f.extend(1u16.to_le_bytes());
        f.extend(8000u32.to_le_bytes());
        f.extend(16000u32.to_le_bytes());
        f.extend(2u16.to_le_bytes());
        f.extend(16u16.to_le_bytes());
        f.extend(22u16.to_le_bytes());
        f.extend(16u16.to_le_bytes());
        f.extend(4u32.to_le_bytes());
        f.extend(1u16.to_le_bytes());
        f.extend([0u8; 14]);
        let mut ext = b"RIFF".to_vec();
        ext.extend((4 + 8 + f.len() as u32 + 8 + data.len() as u32).to_le_bytes());
        ext.extend(b"WAVEfmt ");
        ext.extend((f.len() as u32).to_le_bytes());
        ext.extend(f);
        ext.extend(b"data");
        ext.extend((data.len() as u32).to_le_bytes());
        ext.extend(&data);
        assert_eq!(decode(&ext).unwrap(), [7, -7]);
        // A chunk after the data (tags, say) is not sound.
        let mut tagged = plain.clone();
        tagged.extend(b"LIST");
        tagged.extend(4u32.to_le_bytes());
        tagged.extend([9, 9, 9, 9]);
        assert_eq!(decode(&tagged).unwrap(), [7, -7]);
        // A RIFF that is not WAVE, and a WAVE with no data chunk.
        let mut avi = plain.clone();
        avi[8..12].copy_from_slice(b"AVI ");
        assert_eq!(decode(&avi), Err(WavError::NotWav));
        assert_eq!(decode(&plain[..36]), Err(WavError::NotWav));
    }

    #[test]
    fn a_recording_is_a_standard_wav_another_reader_agrees_with() {
        let t = tone(8000, 321);
        let bytes = encode_pcm16(&t);
        let mut r = hound::WavReader::new(std::io::Cursor::new(&bytes)).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 8000, 16)
        );
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        let back: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, t);
        assert_eq!(
            u32le(&bytes, 4),
            Some(bytes.len() as u32 - 8),
            "RIFF length"
        );
        assert_eq!(u32le(&bytes, 28), Some(16000), "byte rate");
        assert_eq!(u16le(&bytes, 32), Some(2), "block align");
    }
}
