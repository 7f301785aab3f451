//! Reading the WAV files the switch wrote: length and loudness over time.

/// A 16-bit PCM WAV's first channel and its rate.
#[derive(Debug)]
pub struct Wav {
    /// Samples per second.
    pub rate: u32,
    /// Channels in the file.
    pub channels: u16,
    /// The first channel's samples.
    pub samples: Vec<i16>,
}

/// The loudest a sample of generated silence is (the switch's silence carries ±1).
pub const QUIET: i32 = 64;

impl Wav {
    /// Parses a RIFF/WAVE file (PCM, 16-bit); `None` if it is not one.
    pub fn parse(bytes: &[u8]) -> Option<Wav> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return None;
        }
        let u16_at = |at: usize| Some(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        let u32_at = |at: usize| {
            Some(u32::from_le_bytes([
                *bytes.get(at)?,
                *bytes.get(at + 1)?,
                *bytes.get(at + 2)?,
                *bytes.get(at + 3)?,
            ]))
        };
        let (mut rate, mut channels, mut data) = (0, 1, None);
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let len = u32_at(at + 4)? as usize;
            let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
            match &bytes[at..at + 4] {
                b"fmt " => {
                    channels = u16_at(at + 10)?;
                    rate = u32_at(at + 12)?;
                }
                b"data" => data = Some(body),
                _ => {}
            }
            at += 8 + len + (len & 1);
        }
        let frame = 2 * usize::from(channels.max(1));
        let samples = data?
            .chunks_exact(frame)
            .map(|f| i16::from_le_bytes([f[0], f[1]]))
            .collect();
        Some(Wav {
            rate,
            channels,
            samples,
        })
    }

    /// Length of the audio in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }

    /// The loudest sample between two times (seconds from the start).
    pub fn peak(&self, from: f64, to: f64) -> i32 {
        let at = |t: f64| ((t.max(0.0) * f64::from(self.rate)) as usize).min(self.samples.len());
        self.samples[at(from)..at(to).max(at(from))]
            .iter()
            .map(|s| i32::from(*s).abs())
            .max()
            .unwrap_or(0)
    }

    /// The first stretch of sound (start, end in seconds): from the first sample louder than
    /// [`QUIET`] to the start of the next run of quiet samples at least `gap_secs` long (the
    /// switch's generated silence carries ±1 of noise, so quiet is not zero). `None` if the
    /// file is quiet throughout.
    pub fn first_sound(&self, gap_secs: f64) -> Option<(f64, f64)> {
        let rate = f64::from(self.rate.max(1));
        let loud = |s: &i16| i32::from(*s).abs() > QUIET;
        let start = self.samples.iter().position(loud)?;
        let gap = (gap_secs * rate).ceil() as usize;
        let mut quiet_run = 0;
        for (i, s) in self.samples.iter().enumerate().skip(start) {
            if loud(s) {
                quiet_run = 0;
            } else {
                quiet_run += 1;
                if quiet_run >= gap {
                    return Some((start as f64 / rate, (i + 1 - quiet_run) as f64 / rate));
                }
            }
        }
        Some((start as f64 / rate, self.seconds()))
    }

    /// The stretches (start, end in seconds) at least `min_secs` long where every sample is
    /// zero: masked audio. The tone's own 0.5 s gaps are generated silence too, so callers
    /// ask for stretches longer than that.
    pub fn silences(&self, min_secs: f64) -> Vec<(f64, f64)> {
        let rate = f64::from(self.rate.max(1));
        let mut out = Vec::new();
        let mut start = None;
        for (i, s) in self.samples.iter().chain(std::iter::once(&1)).enumerate() {
            match (start, *s == 0) {
                (None, true) => start = Some(i),
                (Some(b), false) => {
                    let (from, to) = (b as f64 / rate, i as f64 / rate);
                    if to - from >= min_secs {
                        out.push((from, to));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        out
    }
}
