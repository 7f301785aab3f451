//! Reading a WAV header to learn how much audio a file holds, and planning the repair of a
//! header the writer never finished.
//!
//! The switch writes 16-bit PCM WAV (8 to 48 kHz, mono or stereo). It writes the header first
//! with a RIFF size of 8 and a `data` size of 0, flushes audio in 64 KiB blocks, and patches
//! both sizes when it closes the file. A switch killed mid-call leaves those first sizes: a
//! player reading the header sees no audio, whatever follows it; or it leaves a bare 44-byte
//! header when it never flushed any audio (fixture `crash`). The duration is therefore
//! computed from the bytes actually present after the `data` chunk header whenever the
//! header's size is missing or larger than the file, and [`plan_repair`] says which sizes to
//! rewrite so the file itself says what is in it (the ingest does that, `files.rs` does the
//! writing). Nothing here panics on any input: every malformed file is a [`WavProblem`] that
//! the ingest turns into a `failed` recording with the problem as its reason.

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

/// Where the audio of a WAV file is and what its header says about it.
#[derive(Debug, Clone, Copy)]
struct Layout {
    sample_rate: u32,
    channels: u16,
    block_align: u16,
    /// The RIFF size (bytes after the first 8) the header declares.
    riff_declared: u32,
    /// Offset of the `data` chunk's body; its size field is the 4 bytes before.
    data_at: u64,
    /// The `data` size the header declares.
    data_declared: u32,
}

impl Layout {
    /// Bytes after the `data` chunk header, whatever the header says.
    fn present(&self, file_len: u64) -> u64 {
        file_len.saturating_sub(self.data_at)
    }

    /// Whether the header was patched by a writer that closed the file: both sizes agree with
    /// the file's length. A `data` size smaller than what follows it with a RIFF size that
    /// matches the file is a well-formed file with chunks after the audio.
    fn sizes_agree(&self, file_len: u64) -> bool {
        let declared = u64::from(self.data_declared);
        declared != 0
            && declared != u64::from(u32::MAX)
            && declared <= self.present(file_len)
            && u64::from(self.riff_declared) + 8 == file_len
    }
}

/// Parse the header in `head` (up to [`HEADER_WINDOW`] bytes of a file `file_len` long).
fn locate(head: &[u8], file_len: u64) -> Result<Layout, WavProblem> {
    if head.len() < 12 {
        return Err(WavProblem::TooShort(file_len));
    }
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(WavProblem::NotRiff);
    }
    let riff_declared = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
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
            return Ok(Layout {
                sample_rate,
                channels,
                block_align,
                riff_declared,
                data_at: body as u64,
                data_declared: size,
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

/// Inspect the first bytes `head` (up to [`HEADER_WINDOW`]) of a file `file_len` bytes long.
pub fn inspect(head: &[u8], file_len: u64) -> Result<WavInfo, WavProblem> {
    let layout = locate(head, file_len)?;
    let present = layout.present(file_len);
    let declared = u64::from(layout.data_declared);
    let sizes_patched = declared != 0 && declared != u64::from(u32::MAX) && declared <= present;
    let data_bytes = if sizes_patched { declared } else { present };
    // A torn last frame is not audio.
    let data_bytes = data_bytes - data_bytes % u64::from(layout.block_align);
    if data_bytes == 0 {
        return Err(WavProblem::NoAudio(file_len));
    }
    let byte_rate = u64::from(layout.sample_rate) * u64::from(layout.block_align);
    Ok(WavInfo {
        sample_rate: layout.sample_rate,
        channels: layout.channels,
        data_bytes,
        duration_ms: data_bytes * 1000 / byte_rate,
        sizes_patched,
    })
}

/// How to make the header of a file the writer never closed agree with the file: the two size
/// fields to rewrite and the length to cut the file to (dropping a torn last frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepair {
    /// The RIFF size the header declared.
    pub riff_size_was: u32,
    /// The RIFF size that matches the repaired file (its length minus 8).
    pub riff_size: u32,
    /// Where the `data` chunk's size field is.
    pub data_size_at: u64,
    /// The `data` size the header declared.
    pub data_size_was: u32,
    /// The bytes of audio the file holds: what follows the `data` chunk header, whole frames.
    pub data_size: u32,
    /// The file's length before the repair.
    pub file_len_was: u64,
    /// The repaired file's length (shorter by a torn last frame, if there was one).
    pub file_len: u64,
}

impl HeaderRepair {
    /// Where the RIFF size field is.
    pub const RIFF_SIZE_AT: u64 = 4;

    /// The bytes to write over the header: (offset, little-endian size), RIFF size first.
    pub fn patches(&self) -> [(u64, [u8; 4]); 2] {
        [
            (Self::RIFF_SIZE_AT, self.riff_size.to_le_bytes()),
            (self.data_size_at, self.data_size.to_le_bytes()),
        ]
    }

    /// Bytes of a torn last frame cut from the end.
    pub fn cut_bytes(&self) -> u64 {
        self.file_len_was - self.file_len
    }
}

/// What a file's header needs: `None` when there is nothing to repair, or nothing a repair
/// could do.
///
/// A header needs repairing when the RIFF size does not match the file's length, or the
/// `data` size is 0, `0xFFFFFFFF` or more than the bytes that follow it: the writer was
/// stopped before it patched them (the switch writes a RIFF size of 8 and a `data` size of 0
/// at the start and fixes them on close). The repaired `data` size is every whole frame after
/// the `data` chunk header, so a chunk after the audio in a file whose RIFF size is also wrong
/// would count as audio: the switch never writes one. Nothing to repair: a well-formed file;
/// a file that is not 16-bit PCM WAV or holds no whole frame of audio ([`inspect`] says why,
/// and the ingest marks it `failed`); a file too long for RIFF's 32-bit sizes (over 4 GiB,
/// 74 hours of 8 kHz mono: [`inspect`] measures it by its length).
pub fn plan_repair(head: &[u8], file_len: u64) -> Option<HeaderRepair> {
    let layout = locate(head, file_len).ok()?;
    if layout.sizes_agree(file_len) {
        return None;
    }
    let present = layout.present(file_len);
    let data_size = present - present % u64::from(layout.block_align);
    if data_size == 0 {
        return None;
    }
    let new_len = layout.data_at + data_size;
    Some(HeaderRepair {
        riff_size_was: layout.riff_declared,
        riff_size: u32::try_from(new_len - 8).ok()?,
        data_size_at: layout.data_at - 4,
        data_size_was: layout.data_declared,
        data_size: u32::try_from(data_size).ok()?,
        file_len_was: file_len,
        file_len: new_len,
    })
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

    /// What the ingest's copy does with a repair: patch the sizes, cut the file.
    fn apply(file: &[u8], repair: &HeaderRepair) -> Vec<u8> {
        let mut out = file[..repair.file_len as usize].to_vec();
        for (at, bytes) in repair.patches() {
            out[at as usize..at as usize + 4].copy_from_slice(&bytes);
        }
        out
    }

    fn plan(file: &[u8]) -> Option<HeaderRepair> {
        plan_repair(&file[..HEADER_WINDOW.min(file.len())], file.len() as u64)
    }

    #[test]
    fn a_header_left_by_a_killed_switch_is_repaired_to_the_audio_present() {
        let cut = wav::cut_by_crash(4096, 7); // 65,536 bytes: one block the switch flushed
        let repair = plan(&cut).unwrap();
        assert_eq!(
            repair,
            HeaderRepair {
                riff_size_was: 8,
                riff_size: 36 + 65_536,
                data_size_at: 40,
                data_size_was: 0,
                data_size: 65_536,
                file_len_was: 44 + 65_536,
                file_len: 44 + 65_536,
            }
        );
        let repaired = apply(&cut, &repair);
        // The header a closing switch would have written, the audio untouched.
        assert_eq!(repaired, wav::noise(4096, 7));
        let info = inspect(&repaired, repaired.len() as u64).unwrap();
        assert!(info.sizes_patched);
        assert_eq!(info.duration_ms, 4096);
        assert_eq!(plan(&repaired), None, "a repaired file needs nothing more");
    }

    #[test]
    fn a_header_claiming_more_audio_than_the_file_holds_is_repaired() {
        let mut file = wav::noise(1000, 3);
        file.truncate(44 + 8000); // half of what the header says
        let repair = plan(&file).unwrap();
        assert_eq!((repair.data_size_was, repair.data_size), (16_000, 8000));
        let repaired = apply(&file, &repair);
        assert_eq!(wav::sizes(&repaired), (36 + 8000, 8000));
        assert_eq!(
            inspect(&repaired, repaired.len() as u64)
                .unwrap()
                .duration_ms,
            500
        );

        // Sizes of 0xFFFFFFFF (a streaming writer's "unknown") are repaired the same way.
        let mut streamed = wav::noise(1000, 3);
        streamed[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let repaired = apply(&streamed, &plan(&streamed).unwrap());
        assert_eq!(repaired, wav::noise(1000, 3));
    }

    #[test]
    fn a_header_with_a_data_size_smaller_than_the_file_and_a_wrong_riff_size_is_repaired() {
        // A writer that patched its header now and then, killed between two patches.
        let mut file = wav::noise(1000, 4);
        file[4..8].copy_from_slice(&(36u32 + 6000).to_le_bytes());
        file[40..44].copy_from_slice(&6000u32.to_le_bytes());
        let repaired = apply(&file, &plan(&file).unwrap());
        assert_eq!(repaired, wav::noise(1000, 4));
    }

    #[test]
    fn a_torn_last_frame_is_cut_when_the_header_is_repaired() {
        let mut cut = wav::cut_by_crash(100, 5);
        cut.push(0x7f); // half a sample
        let repair = plan(&cut).unwrap();
        assert_eq!(repair.data_size, 1600);
        assert_eq!(repair.cut_bytes(), 1);
        let repaired = apply(&cut, &repair);
        assert_eq!(repaired, wav::noise(100, 5));

        // Stereo: a frame is 4 bytes, so 3 stray bytes are cut.
        let mut stereo = wav::header(16_000, 2, 0).to_vec();
        stereo[4..8].copy_from_slice(&8u32.to_le_bytes());
        stereo.extend(std::iter::repeat_n(1u8, 64_000 + 3));
        let repair = plan(&stereo).unwrap();
        assert_eq!((repair.data_size, repair.cut_bytes()), (64_000, 3));
        let repaired = apply(&stereo, &repair);
        assert_eq!(
            inspect(&repaired, repaired.len() as u64)
                .unwrap()
                .duration_ms,
            1000
        );
    }

    #[test]
    fn well_formed_files_and_files_without_audio_are_left_alone() {
        assert_eq!(plan(FIXTURE), None, "the file a real switch closed");
        assert_eq!(plan(&wav::noise(1000, 1)), None);
        // A chunk after the audio, counted in the RIFF size: well-formed.
        let mut listed = wav::noise(1000, 1);
        listed.extend_from_slice(b"LIST\x04\0\0\0INFO");
        let riff = u32::try_from(listed.len() - 8).unwrap();
        listed[4..8].copy_from_slice(&riff.to_le_bytes());
        assert_eq!(plan(&listed), None);
        // No whole frame of audio: nothing to repair, the ingest marks it failed.
        assert_eq!(plan(&wav::empty()), None);
        let mut one_byte = wav::empty();
        one_byte.push(1);
        assert_eq!(plan(&one_byte), None);
        assert_eq!(
            inspect(&one_byte, one_byte.len() as u64),
            Err(WavProblem::NoAudio(45))
        );
        // Not WAV, or not audio we read: left alone too.
        assert_eq!(plan(b"ID3\x04 an mp3 file, say"), None);
        let mut eight_bit = wav::cut_by_crash(100, 1);
        eight_bit[34] = 8;
        assert_eq!(plan(&eight_bit), None);
    }

    #[test]
    fn a_file_too_long_for_riff_sizes_is_not_repaired() {
        let head = wav::header(8000, 1, 0);
        assert!(plan_repair(&head, 44 + 1_000_000).is_some());
        assert_eq!(plan_repair(&head, u64::from(u32::MAX) + 100), None);
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
            if let Some(r) = plan_repair(&bytes[..cut], claimed) {
                assert!(r.data_size > 0);
                assert!(r.file_len <= claimed);
                assert_eq!(u64::from(r.riff_size) + 8, r.file_len);
                assert_eq!(r.data_size_at + 4 + u64::from(r.data_size), r.file_len);
            }
        }
    }
}
