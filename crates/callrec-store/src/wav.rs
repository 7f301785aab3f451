//! Reading a WAV header to learn how much audio a file holds.
//!
//! The switch writes 16-bit PCM WAV (8 to 48 kHz, mono or stereo). It patches the RIFF and
//! `data` sizes when it closes the file, so a switch killed mid-call leaves sizes of 0, or a
//! bare 44-byte header when it never flushed any audio (fixture `crash`). The duration is
//! therefore computed from the bytes actually present after the `data` chunk header whenever
//! the header's size is missing or larger than the file. Nothing here panics on any input:
//! every malformed file is a [`WavProblem`] that the ingest turns into a `failed` recording
//! with the problem as its reason.

/// How much of a file's start [`inspect`] needs to see at most.
pub const HEADER_WINDOW: usize = 64 * 1024;

/// What a WAV header says about the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Samples per second.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// Bytes of audio in the file.
    pub data_bytes: u64,
    /// Length of the audio.
    pub duration_ms: u64,
    /// Whether the header's `data` size matched the file (false: the writer never patched it).
    pub sizes_patched: bool,
}

/// Why a file is not a WAV recording with audio.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavProblem {
    /// Shorter than any WAV header.
    #[error("not a WAV file: only {0} bytes")]
    TooShort(u64),
    /// No `RIFF…WAVE` signature.
    #[error("not a WAV file: no RIFF/WAVE signature")]
    NotRiff,
    /// No `fmt ` chunk before the audio.
    #[error("not a WAV file: no fmt chunk")]
    NoFormat,
    /// An encoding other than 16-bit PCM, or a rate or channel count out of range.
    #[error("unsupported WAV audio: {0}")]
    Unsupported(String),
    /// No `data` chunk in the first [`HEADER_WINDOW`] bytes.
    #[error("not a WAV file: no data chunk")]
    NoData,
    /// A valid header and no audio after it (the switch was killed before flushing).
    #[error(
        "the file holds no audio: a {0}-byte WAV header only (the switch stopped before writing any)"
    )]
    NoAudio(u64),
}

/// Inspect the first bytes `head` (up to [`HEADER_WINDOW`]) of a file `file_len` bytes long.
pub fn inspect(head: &[u8], file_len: u64) -> Result<WavInfo, WavProblem> {
    if head.len() < 12 {
        return Err(WavProblem::TooShort(file_len));
    }
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(WavProblem::NotRiff);
    }
    let mut pos = 12usize;
    let mut format: Option<(u32, u16, u16)> = None;
    while let Some(chunk) = head.get(pos..pos + 8) {
        let id = &chunk[0..4];
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        let body = pos + 8;
        if id == b"fmt " {
            format = Some(parse_format(head.get(body..).unwrap_or(&[]), size)?);
        } else if id == b"data" {
            let (sample_rate, channels, block_align) = format.ok_or(WavProblem::NoFormat)?;
            let present = file_len.saturating_sub(body as u64);
            let declared = u64::from(size);
            let sizes_patched =
                declared != 0 && declared != u64::from(u32::MAX) && declared <= present;
            let data_bytes = if sizes_patched { declared } else { present };
            // A torn last frame is not audio.
            let data_bytes = data_bytes - data_bytes % u64::from(block_align);
            if data_bytes == 0 {
                return Err(WavProblem::NoAudio(file_len));
            }
            let byte_rate = u64::from(sample_rate) * u64::from(block_align);
            return Ok(WavInfo {
                sample_rate,
                channels,
                data_bytes,
                duration_ms: data_bytes * 1000 / byte_rate,
                sizes_patched,
            });
        }
        // Chunks are padded to an even length.
        let next = (body as u64) + u64::from(size) + u64::from(size & 1);
        pos = match usize::try_from(next) {
            Ok(n) => n,
            Err(_) => break,
        };
    }
    if head.len() as u64 == file_len && format.is_some() && pos >= head.len() {
        // The whole file was seen and it ends before any data chunk: a header with no audio.
        return Err(WavProblem::NoAudio(file_len));
    }
    Err(WavProblem::NoData)
}

/// (sample rate, channels, block align) of a supported `fmt ` chunk.
fn parse_format(body: &[u8], size: u32) -> Result<(u32, u16, u16), WavProblem> {
    if size < 16 || body.len() < 16 {
        return Err(WavProblem::NoFormat);
    }
    let le16 = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
    let le32 = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let mut tag = le16(0);
    let channels = le16(2);
    let sample_rate = le32(4);
    let bits = le16(14);
    // WAVE_FORMAT_EXTENSIBLE carries the real tag in the first two bytes of its sub-format.
    if tag == 0xFFFE && size >= 40 && body.len() >= 26 {
        tag = le16(24);
    }
    if tag != 1 {
        return Err(WavProblem::Unsupported(format!(
            "format tag {tag:#06x}, not PCM"
        )));
    }
    if bits != 16 {
        return Err(WavProblem::Unsupported(format!(
            "{bits} bits per sample, not 16"
        )));
    }
    if !(1..=2).contains(&channels) {
        return Err(WavProblem::Unsupported(format!("{channels} channels")));
    }
    if !(8_000..=48_000).contains(&sample_rate) {
        return Err(WavProblem::Unsupported(format!("{sample_rate} Hz")));
    }
    Ok((sample_rate, channels, channels * 2))
}

/// A 44-byte header of a 16-bit PCM WAV whose `data` chunk declares `data_bytes` (what a
/// writer patches on close). For tests and benchmarks that need realistic files.
pub fn pcm_header(sample_rate: u32, channels: u16, data_bytes: u32) -> [u8; 44] {
    let block_align = channels * 2;
    let byte_rate = sample_rate * u32::from(block_align);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_bytes.wrapping_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_testkit::wav;

    const FIXTURE: &[u8] =
        include_bytes!("../../../tests/fixtures/freeswitch/record-pause-mask.wav");

    #[test]
    fn the_recorded_fixture_is_nine_seconds_of_8khz_mono() {
        let info = inspect(
            &FIXTURE[..HEADER_WINDOW.min(FIXTURE.len())],
            FIXTURE.len() as u64,
        )
        .unwrap();
        assert_eq!(info.sample_rate, 8000);
        assert_eq!(info.channels, 1);
        assert!(info.sizes_patched);
        assert_eq!(info.duration_ms, 9020);
    }

    #[test]
    fn a_bare_header_left_by_a_killed_switch_has_no_audio() {
        let header = wav::header(8000, 1, 0);
        assert_eq!(inspect(&header, 44), Err(WavProblem::NoAudio(44)));
    }

    #[test]
    fn an_unpatched_header_is_measured_by_the_bytes_present() {
        let mut file = wav::header(16000, 2, 0).to_vec();
        file.extend(std::iter::repeat_n(0u8, 64_000 + 3)); // 1 s of 16 kHz stereo, torn frame
        let info = inspect(&file, file.len() as u64).unwrap();
        assert!(!info.sizes_patched);
        assert_eq!(info.duration_ms, 1000);
        assert_eq!(info.channels, 2);
    }

    #[test]
    fn garbage_never_panics() {
        assert_eq!(inspect(b"", 0), Err(WavProblem::TooShort(0)));
        assert_eq!(
            inspect(b"hello world, not a wav", 22),
            Err(WavProblem::NotRiff)
        );
        let mut h = wav::header(8000, 1, 100);
        h[34] = 8; // 8-bit
        assert!(matches!(inspect(&h, 144), Err(WavProblem::Unsupported(_))));
        // Chunk sizes that point far past the end.
        let mut weird = b"RIFF\0\0\0\0WAVEjunk\xff\xff\xff\xff".to_vec();
        weird.extend([0u8; 20]);
        assert_eq!(inspect(&weird, weird.len() as u64), Err(WavProblem::NoData));
        // Every truncation of a valid header is handled.
        let full = wav::header(8000, 1, 8000);
        for cut in 0..full.len() {
            let _ = inspect(&full[..cut], cut as u64);
        }
    }

    #[test]
    fn random_corruption_of_a_real_file_never_panics() {
        let mut rng = rand::rng();
        let head = &FIXTURE[..256];
        for _ in 0..20_000 {
            let mut bytes = head.to_vec();
            for _ in 0..rand::Rng::random_range(&mut rng, 1..8) {
                let i = rand::Rng::random_range(&mut rng, 0..bytes.len());
                bytes[i] = rand::Rng::random(&mut rng);
            }
            let cut = rand::Rng::random_range(&mut rng, 0..=bytes.len());
            let claimed = rand::Rng::random_range(&mut rng, 0..u64::from(u32::MAX) * 2);
            if let Ok(info) = inspect(&bytes[..cut], claimed) {
                assert!(info.data_bytes > 0);
                assert!(info.data_bytes <= claimed);
            }
        }
    }
}
