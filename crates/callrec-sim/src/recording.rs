//! `uuid_record`: what a media bug writes, and when.
//!
//! A recording is a timeline of what the channel's media carried while the bug was
//! attached: a tone while the call talks, a constant -2 where it carries no sound, zeros
//! while masked, nothing while paused or while the call is on hold (no media flows; see the
//! `sip-hold` capture). The file gets its 44-byte header when recording starts and its audio
//! when it stops; a switch killed mid-call leaves what the real one leaves: that header,
//! unpatched, and the audio in whole 64 KiB blocks (nothing in the first 4.096 s of mono
//! audio, as in the `crash` capture).
//!
//! Like the real media bug, the first [`crate::SimConfig::record_pre_buffer`] of audio is
//! never written (the captures lose 480 ms on every recording), except on a loopback B leg,
//! which the real switch records from its first frame.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::clock::Micros;

/// Sample rate of every recording (the captures' L16/PCMU channels run at 8 kHz).
pub const SAMPLE_RATE: u32 = 8000;

/// What the media of a channel carried during a stretch of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    /// The call talking: a tone.
    Tone,
    /// A call that carries no sound (a parked loopback partner): written as the real
    /// switch writes it, a constant -2, never as zeros.
    Quiet,
    /// Masked (`uuid_record mask`): written as silence, every sample zero.
    Silence,
}

/// What a channel's media carries at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    /// No media flows (ringing, held, hung up): nothing written, the pre-buffer waits.
    None,
    /// Frames flow but carry nothing to write (a phone's early media before it sends
    /// RTP): they fill the bug's pre-buffer and nothing is written.
    Empty,
    /// Audio flows.
    Audio(Audio),
}

/// Why a recording ended, as `Record-Completion-Cause` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionCause {
    /// The normal end (hangup or `stop`); the switch reports `success-silence`.
    SuccessSilence,
    /// The recording's `limit` was reached.
    SuccessMaxtime,
    /// Shorter than `RECORD_MIN_SEC`: the switch deleted the file.
    InputTooShort,
}

impl CompletionCause {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionCause::SuccessSilence => "success-silence",
            CompletionCause::SuccessMaxtime => "success-maxtime",
            CompletionCause::InputTooShort => "input-too-short",
        }
    }
}

/// A recording in progress on a channel.
#[derive(Debug, Clone)]
pub(crate) struct ActiveRecording {
    /// The path as the command gave it (what `Record-File-Path` shows).
    pub path: String,
    /// Where the file is written (relative paths resolved against the spool dir).
    pub file: PathBuf,
    pub vars: Vec<(String, String)>,
    pub started: Micros,
    pub channels: u16,
    pub min_sec: u32,
    pub paused: bool,
    pub masked: bool,
    /// When the current stretch began.
    pub mark: Micros,
    /// Media time still swallowed by the bug's pre-buffer.
    pub pre_buffer_left: Micros,
    pub stretches: Vec<(Audio, Micros)>,
    /// `RECORD_ANSWER_REQ=true`: the media bug takes no frame until the channel is answered
    /// (`SMBF_ANSWER_REQ` in the switch's `switch_core_media_bug.c`).
    pub answer_req: bool,
}

impl ActiveRecording {
    /// What this recording receives of `media` on a channel answered or not.
    pub fn gate(&self, media: Media, answered: bool) -> Media {
        if self.answer_req && !answered {
            Media::None
        } else {
            media
        }
    }

    /// Closes the stretch that ran until `now`, given what the media carried during it.
    pub fn settle(&mut self, now: Micros, media: Media) {
        let mut len = (now - self.mark).max(0);
        self.mark = now;
        let carried = match media {
            Media::None => return,
            Media::Empty => {
                self.pre_buffer_left -= len.min(self.pre_buffer_left);
                return;
            }
            Media::Audio(a) => a,
        };
        if self.paused || len == 0 {
            return;
        }
        let swallowed = len.min(self.pre_buffer_left);
        self.pre_buffer_left -= swallowed;
        len -= swallowed;
        if len == 0 {
            return;
        }
        let audio = if self.masked { Audio::Silence } else { carried };
        match self.stretches.last_mut() {
            Some((a, l)) if *a == audio => *l += len,
            _ => self.stretches.push((audio, len)),
        }
    }

    /// Samples per channel written so far (whole frames, as the file will hold them).
    pub fn samples(&self) -> u64 {
        self.stretches.iter().map(|(_, len)| samples_in(*len)).sum()
    }
}

fn samples_in(len: Micros) -> u64 {
    (len.max(0) as u64 * SAMPLE_RATE as u64) / 1_000_000
}

/// A finished (or abandoned) recording, for tests and the scripting API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// `Unique-ID` of the recorded channel.
    pub uuid: String,
    /// `Record-File-Path`.
    pub path: String,
    /// The recording variables (`{callrec_id=...}`).
    pub vars: Vec<(String, String)>,
    /// When recording started (µs since the epoch).
    pub started: Micros,
    /// When it stopped; `None` while running or if the switch died first.
    pub stopped: Option<Micros>,
    /// Samples per channel in the file.
    pub samples: u64,
    /// 1 or 2 (`RECORD_STEREO=true`).
    pub channels: u16,
    /// The completion cause, once stopped.
    pub cause: Option<CompletionCause>,
    /// Whether the switch deleted the file (`RECORD_DISCARDED`).
    pub discarded: bool,
}

/// How much audio the switch's file writer holds before it writes to the file: a killed
/// switch leaves whole blocks of this size behind the header (measured: 65,536 bytes after
/// 5.5 s of mono audio, 4.096 s of it).
pub const FLUSH_BLOCK: u64 = 64 * 1024;

/// Writes the 44-byte header a recording starts with, as the switch writes it before any
/// audio: RIFF size 8 and data size 0, patched only when the file is closed (measured).
pub(crate) fn create_header_only(file: &Path, channels: u16) -> io::Result<()> {
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
    {
        fs::create_dir_all(dir)?;
    }
    let mut f = BufWriter::new(fs::File::create(file)?);
    write_header_sizes(&mut f, channels, 8, 0)?;
    f.flush()
}

/// Writes the finished file (header and audio) and syncs it, before RECORD_STOP is sent.
pub(crate) fn write_final(rec: &ActiveRecording) -> io::Result<u64> {
    let frames = rec.samples();
    let mut f = BufWriter::with_capacity(64 * 1024, fs::File::create(&rec.file)?);
    write_header(&mut f, rec.channels, frames)?;
    write_audio(&mut f, rec, frames)?;
    let file = f.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(44 + frames * 2 * rec.channels as u64)
}

/// What a recording's file holds once the switch is killed (SIGKILL): the header as it was
/// written at the start, then the audio its writer had flushed, in whole [`FLUSH_BLOCK`]s.
/// Returns the frames left in the file.
pub(crate) fn write_killed(rec: &ActiveRecording) -> io::Result<u64> {
    let frame_bytes = 2 * u64::from(rec.channels.max(1));
    let flushed = rec.samples() * frame_bytes / FLUSH_BLOCK * FLUSH_BLOCK;
    let frames = flushed / frame_bytes;
    let mut f = BufWriter::with_capacity(64 * 1024, fs::File::create(&rec.file)?);
    write_header_sizes(&mut f, rec.channels, 8, 0)?;
    write_audio(&mut f, rec, frames)?;
    f.flush()?;
    Ok(frames)
}

/// The first `frames` frames of a recording's audio.
fn write_audio(w: &mut impl Write, rec: &ActiveRecording, frames: u64) -> io::Result<()> {
    let mut phase: u64 = 0;
    for (audio, len) in &rec.stretches {
        let n = samples_in(*len);
        for _ in 0..n {
            if phase == frames {
                return Ok(());
            }
            for ch in 0..rec.channels {
                let v = match audio {
                    Audio::Silence => 0i16,
                    Audio::Quiet => QUIET_SAMPLE,
                    Audio::Tone => tone_sample(phase, ch),
                };
                w.write_all(&v.to_le_bytes())?;
            }
            phase += 1;
        }
    }
    Ok(())
}

/// What the real switch writes for a parked loopback partner's silence (measured:
/// `tests/fixtures/freeswitch/README.md`), so that only masking writes zeros.
const QUIET_SAMPLE: i16 = -2;

/// A 440 Hz tone on the first channel, 660 Hz on the second; never exactly zero over a
/// 10 ms window, so silence in a file always means masked audio.
fn tone_sample(n: u64, channel: u16) -> i16 {
    let freq = if channel == 0 { 440.0 } else { 660.0 };
    let t = n as f64 / SAMPLE_RATE as f64;
    (10_000.0 * (2.0 * std::f64::consts::PI * freq * t + 0.3).sin()) as i16
}

fn write_header(w: &mut impl Write, channels: u16, frames: u64) -> io::Result<()> {
    let block_align = 2 * channels as u32;
    let data_len = (frames * block_align as u64).min(u32::MAX as u64 - 36) as u32;
    write_header_sizes(w, channels, 36 + data_len, data_len)
}

fn write_header_sizes(
    w: &mut impl Write,
    channels: u16,
    riff_len: u32,
    data_len: u32,
) -> io::Result<()> {
    let block_align = 2 * channels as u32;
    w.write_all(b"RIFF")?;
    w.write_all(&riff_len.to_le_bytes())?;
    w.write_all(b"WAVEfmt ")?;
    w.write_all(&16u32.to_le_bytes())?;
    w.write_all(&1u16.to_le_bytes())?;
    w.write_all(&channels.to_le_bytes())?;
    w.write_all(&SAMPLE_RATE.to_le_bytes())?;
    w.write_all(&(SAMPLE_RATE * block_align).to_le_bytes())?;
    w.write_all(&(block_align as u16).to_le_bytes())?;
    w.write_all(&16u16.to_le_bytes())?;
    w.write_all(b"data")?;
    w.write_all(&data_len.to_le_bytes())
}

/// The `<media-bugs>` listing of `uuid_buglist`.
pub(crate) fn buglist(recordings: &[ActiveRecording]) -> String {
    let mut out = String::from("<media-bugs>\n");
    for r in recordings {
        out.push_str(" <media-bug>\n  <function>session_record</function>\n  <target>");
        out.push_str(&r.path);
        out.push_str("</target>\n  <thread-locked>0</thread-locked>\n </media-bug>\n");
    }
    out.push_str("</media-bugs>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> ActiveRecording {
        ActiveRecording {
            path: "x.wav".into(),
            file: PathBuf::from("x.wav"),
            vars: vec![],
            started: 0,
            channels: 1,
            min_sec: 0,
            paused: false,
            masked: false,
            mark: 0,
            pre_buffer_left: 480_000,
            stretches: vec![],
            answer_req: false,
        }
    }

    #[test]
    fn armed_before_answer_writes_nothing_until_the_answer() {
        let mut r = ActiveRecording {
            answer_req: true,
            pre_buffer_left: 0,
            ..rec()
        };
        // Early media while ringing reaches an ordinary bug, not one armed for the answer.
        let early = Media::Audio(Audio::Tone);
        r.settle(2_000_000, r.gate(early, false));
        assert!(r.stretches.is_empty());
        r.settle(5_000_000, r.gate(early, true));
        assert_eq!(r.stretches, vec![(Audio::Tone, 3_000_000)]);
        let plain = rec();
        assert_eq!(plain.gate(early, false), early);
    }

    #[test]
    fn pause_writes_nothing_and_mask_writes_silence() {
        let mut r = rec();
        r.settle(4_000_000, Media::Audio(Audio::Tone));
        r.paused = true;
        r.settle(6_000_000, Media::Audio(Audio::Tone));
        r.paused = false;
        r.settle(8_000_000, Media::Audio(Audio::Tone));
        r.masked = true;
        r.settle(9_500_000, Media::Audio(Audio::Tone));
        r.masked = false;
        r.settle(11_500_000, Media::Audio(Audio::Tone));
        assert_eq!(
            r.stretches,
            vec![
                (Audio::Tone, 5_520_000),
                (Audio::Silence, 1_500_000),
                (Audio::Tone, 2_000_000)
            ]
        );
        assert_eq!(r.samples(), 72_160);
    }

    #[test]
    fn no_media_writes_nothing() {
        let mut r = rec();
        r.settle(2_000_000, Media::None);
        assert!(r.stretches.is_empty());
        assert_eq!(r.pre_buffer_left, 480_000);
    }

    #[test]
    fn the_tone_is_never_silent_for_ten_milliseconds() {
        let window = 80;
        let samples: Vec<i16> = (0..8000).map(|n| tone_sample(n, 0)).collect();
        assert!(samples.windows(window).all(|w| w.iter().any(|s| *s != 0)));
    }
}
