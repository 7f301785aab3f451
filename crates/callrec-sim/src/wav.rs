//! Reading WAV files back: what tests and the demo check recordings with.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

/// The format and samples of a PCM WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavInfo {
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Interleaved 16-bit samples (empty for other sample sizes).
    pub samples: Vec<i16>,
}

/// A file that is not the WAV the simulator writes.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The bytes are not a PCM WAV file.
    #[error("{path} is not a PCM WAV file: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl WavInfo {
    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<WavInfo, WavError> {
        let bytes = fs::read(path).map_err(|source| WavError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes).map_err(|reason| WavError::Format {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses the bytes of a WAV file (RIFF chunks, PCM format, 16-bit data).
    pub fn parse(bytes: &[u8]) -> Result<WavInfo, &'static str> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("no RIFF/WAVE header");
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut pos = 12;
        let mut fmt: Option<(u16, u32, u16)> = None;
        while pos + 8 <= bytes.len() {
            let id = &bytes[pos..pos + 4];
            let len = u32_at(pos + 4) as usize;
            let body = pos + 8;
            if id == b"fmt " {
                if body + 16 > bytes.len() {
                    return Err("short fmt chunk");
                }
                if u16_at(body) != 1 {
                    return Err("not PCM");
                }
                fmt = Some((u16_at(body + 2), u32_at(body + 4), u16_at(body + 14)));
            } else if id == b"data" {
                let (channels, sample_rate, bits) = fmt.ok_or("data before fmt")?;
                let end = (body + len).min(bytes.len());
                let samples = if bits == 16 {
                    bytes[body..end]
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]))
                        .collect()
                } else {
                    Vec::new()
                };
                return Ok(WavInfo {
                    channels,
                    sample_rate,
                    bits_per_sample: bits,
                    samples,
                });
            }
            pos = body + len + (len & 1);
        }
        Err("no data chunk")
    }

    /// Samples per channel.
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }

    /// Length of the audio.
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.frames() as u64 * 1_000_000 / self.sample_rate as u64)
    }

    /// The stretches of digital silence (every sample zero) at least `min` long, as
    /// `(start, end)` offsets from the start of the audio.
    pub fn silences(&self, min: Duration) -> Vec<(Duration, Duration)> {
        let ch = self.channels.max(1) as usize;
        let rate = self.sample_rate.max(1) as u64;
        let min_frames = (min.as_micros() as u64 * rate / 1_000_000) as usize;
        let at = |f: usize| Duration::from_micros(f as u64 * 1_000_000 / rate);
        let mut out = Vec::new();
        let mut start = None;
        for f in 0..=self.frames() {
            let silent =
                f < self.frames() && self.samples[f * ch..f * ch + ch].iter().all(|s| *s == 0);
            match (silent, start) {
                (true, None) => start = Some(f),
                (false, Some(s)) => {
                    if f - s >= min_frames.max(1) {
                        out.push((at(s), at(f)));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        out
    }
}
