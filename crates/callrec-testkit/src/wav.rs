//! WAV files as the switch's `mod_sndfile` writes them: a 44-byte header, then 16-bit PCM.
//! The recordings here are 8 kHz mono, as a narrowband call is recorded.
//!
//! The header is written here, not taken from `callrec_store::wav` (the code under test);
//! a unit test checks it against the file a real FreeSWITCH recorded
//! (`tests/fixtures/freeswitch/record-pause-mask.wav`).

/// The length of the header of a canonical PCM WAV.
pub const HEADER_LEN: usize = 44;

/// Bytes of audio per millisecond at 8 kHz, 16-bit mono.
pub const BYTES_PER_MS: u32 = 16;

/// The header of a 16-bit PCM WAV whose `data` chunk holds `data_len` bytes (what the switch
/// patches in when it closes the file).
pub fn header(sample_rate: u32, channels: u16, data_len: u32) -> [u8; HEADER_LEN] {
    let block_align = channels * 2;
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.wrapping_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes()); // size of the fmt chunk
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// `ms` milliseconds of noise whose samples depend on `seed`, so two recordings made with
/// different seeds never share a hash.
pub fn noise(ms: u32, seed: u64) -> Vec<u8> {
    const MUL: u64 = 6364136223846793005;
    const INC: u64 = 1442695040888963407;
    let data_len = ms * BYTES_PER_MS;
    let mut out = Vec::with_capacity(HEADER_LEN + data_len as usize);
    out.extend_from_slice(&header(8000, 1, data_len));
    let mut x = seed.wrapping_mul(MUL).wrapping_add(INC);
    for _ in 0..data_len / 2 {
        x = x.wrapping_mul(MUL).wrapping_add(INC);
        out.extend_from_slice(&((x >> 48) as i16).to_le_bytes());
    }
    out
}

/// `ms` milliseconds of silence (every sample zero).
pub fn silence(ms: u32) -> Vec<u8> {
    let data_len = ms * BYTES_PER_MS;
    let mut out = header(8000, 1, data_len).to_vec();
    out.resize(HEADER_LEN + data_len as usize, 0);
    out
}

/// A header and no audio: what a switch killed mid-recording leaves (the `crash` capture).
pub fn empty() -> Vec<u8> {
    header(8000, 1, 0).to_vec()
}

/// The RIFF size the switch writes at the start of a file and patches when it closes it.
pub const UNCLOSED_RIFF_SIZE: u32 = 8;

/// `ms` milliseconds of noise (as [`noise`]) under the header a switch killed mid-call leaves:
/// RIFF size 8 and `data` size 0, as written when the file was opened (seen on the real
/// switch: it flushes audio in 64 KiB blocks and patches the sizes only on close).
pub fn cut_by_crash(ms: u32, seed: u64) -> Vec<u8> {
    let mut out = noise(ms, seed);
    out[4..8].copy_from_slice(&UNCLOSED_RIFF_SIZE.to_le_bytes());
    out[40..44].copy_from_slice(&0u32.to_le_bytes());
    out
}

/// The (RIFF size, `data` size) of a canonical 44-byte header.
pub fn sizes(file: &[u8]) -> (u32, u32) {
    let le32 = |at: usize| u32::from_le_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]);
    (le32(4), le32(40))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_one_a_real_switch_wrote() {
        let recorded = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/freeswitch/record-pause-mask.wav"),
        )
        .unwrap();
        let data_len = (recorded.len() - HEADER_LEN) as u32;
        assert_eq!(header(8000, 1, data_len), recorded[..HEADER_LEN]);
    }

    #[test]
    fn noise_is_as_long_as_asked_and_differs_by_seed() {
        let a = noise(250, 1);
        assert_eq!(a.len(), HEADER_LEN + 250 * 16);
        assert_eq!(a[..HEADER_LEN], header(8000, 1, 4000));
        assert_eq!(a, noise(250, 1));
        assert_ne!(a, noise(250, 2));
    }

    #[test]
    fn a_file_cut_by_a_crash_keeps_the_sizes_written_at_the_start() {
        let cut = cut_by_crash(250, 1);
        let whole = noise(250, 1);
        assert_eq!(sizes(&whole), (36 + 4000, 4000));
        assert_eq!(sizes(&cut), (8, 0));
        assert_eq!(cut[8..40], whole[8..40]);
        assert_eq!(cut[HEADER_LEN..], whole[HEADER_LEN..]);
    }

    #[test]
    fn silence_is_zeros_and_empty_is_a_header_alone() {
        let s = silence(1000);
        assert_eq!(s.len(), HEADER_LEN + 16_000);
        assert!(s[HEADER_LEN..].iter().all(|b| *b == 0));
        assert_eq!(empty(), header(8000, 1, 0));
    }
}
