//! A ZIP archive written front to back, for `GET /recordings/export.zip`: entries are stored
//! (audio does not compress), each followed by a data descriptor, and the central directory
//! comes last, so nothing is ever sought back to and the archive streams to the client as it
//! is made. ZIP64 fields are written where a size, an offset or the entry count needs them,
//! so an export of any size opens (APPNOTE 6.3.x §4.3.9, §4.4, §4.5.3).
//!
//! Why not the `zip` crate the CLI's subject-access export uses: its writer seeks back to
//! each local header to fill in the CRC and sizes, which a socket cannot do; holding each
//! entry in memory instead would make memory grow with the longest recording.
//!
//! The central directory is spooled to a file (one record per entry) rather than held in
//! memory, so memory stays flat however many recordings an export holds.

use std::io::{self, Read, Seek, SeekFrom, Write};

use chrono::{Datelike, NaiveDateTime, Timelike};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// Bit 3: sizes and CRC follow the data; bit 11: names are UTF-8.
const FLAGS: u16 = 0x0008 | 0x0800;
/// 4.5: ZIP64 needs version 4.5 to extract.
const VERSION: u16 = 45;
/// Made by: Unix (3), version 4.5; external attributes: a regular file, mode 0644.
const MADE_BY: u16 = (3 << 8) | 45;
const FILE_MODE: u32 = 0o100_644 << 16;

/// Writes a ZIP archive to `out` entry by entry, counting what it wrote.
pub struct ZipStream<W: Write, S: Read + Write + Seek> {
    out: Counting<W>,
    /// The central directory so far.
    central: S,
    entries: u64,
    /// The entry being written: name, offset of its local header, time, CRC and size.
    open: Option<OpenEntry>,
}

struct OpenEntry {
    name: String,
    offset: u64,
    dos_time: (u16, u16),
    crc: crc32fast::Hasher,
    size: u64,
}

impl<W: Write, S: Read + Write + Seek> ZipStream<W, S> {
    /// An archive written to `out`, its central directory spooled to `central` (an empty
    /// scratch file).
    pub fn new(out: W, central: S) -> Self {
        ZipStream {
            out: Counting { inner: out, n: 0 },
            central,
            entries: 0,
            open: None,
        }
    }

    /// Start an entry named `name` (a relative path with `/` separators), modified at `at`.
    pub fn start_entry(&mut self, name: &str, at: NaiveDateTime) -> io::Result<()> {
        self.finish_entry()?;
        let offset = self.out.n;
        let dos_time = dos_time(at);
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        put32(&mut h, LOCAL_HEADER);
        put16(&mut h, VERSION);
        put16(&mut h, FLAGS);
        put16(&mut h, 0); // stored
        put16(&mut h, dos_time.0);
        put16(&mut h, dos_time.1);
        put32(&mut h, 0); // CRC: in the data descriptor
        put32(&mut h, u32::MAX); // sizes: in the data descriptor (ZIP64, 8 bytes each)
        put32(&mut h, u32::MAX);
        put16(&mut h, name_len(name)?);
        put16(&mut h, 20);
        h.extend_from_slice(name.as_bytes());
        // The ZIP64 extra field says the data descriptor holds 8-byte sizes.
        put16(&mut h, 0x0001);
        put16(&mut h, 16);
        put64(&mut h, 0);
        put64(&mut h, 0);
        self.out.write_all(&h)?;
        self.open = Some(OpenEntry {
            name: name.to_owned(),
            offset,
            dos_time,
            crc: crc32fast::Hasher::new(),
            size: 0,
        });
        Ok(())
    }

    /// Append to the open entry.
    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        let entry = self
            .open
            .as_mut()
            .ok_or_else(|| io::Error::other("no ZIP entry is open"))?;
        entry.crc.update(data);
        entry.size += data.len() as u64;
        self.out.write_all(data)
    }

    fn finish_entry(&mut self) -> io::Result<()> {
        let Some(entry) = self.open.take() else {
            return Ok(());
        };
        let crc = entry.crc.finalize();
        let mut d = Vec::with_capacity(24);
        put32(&mut d, DATA_DESCRIPTOR);
        put32(&mut d, crc);
        put64(&mut d, entry.size);
        put64(&mut d, entry.size);
        self.out.write_all(&d)?;

        // Its central directory record, with ZIP64 fields for what does not fit in 32 bits.
        let mut extra = Vec::new();
        let big_size = entry.size >= u64::from(u32::MAX);
        let big_offset = entry.offset >= u64::from(u32::MAX);
        if big_size {
            put64(&mut extra, entry.size);
            put64(&mut extra, entry.size);
        }
        if big_offset {
            put64(&mut extra, entry.offset);
        }
        let mut c = Vec::with_capacity(46 + entry.name.len() + 4 + extra.len());
        put32(&mut c, CENTRAL_HEADER);
        put16(&mut c, MADE_BY);
        put16(&mut c, VERSION);
        put16(&mut c, FLAGS);
        put16(&mut c, 0);
        put16(&mut c, entry.dos_time.0);
        put16(&mut c, entry.dos_time.1);
        put32(&mut c, crc);
        let size32 = if big_size {
            u32::MAX
        } else {
            entry.size as u32
        };
        put32(&mut c, size32);
        put32(&mut c, size32);
        put16(&mut c, name_len(&entry.name)?);
        put16(
            &mut c,
            if extra.is_empty() {
                0
            } else {
                4 + extra.len() as u16
            },
        );
        put16(&mut c, 0); // comment
        put16(&mut c, 0); // disk
        put16(&mut c, 0); // internal attributes
        put32(&mut c, FILE_MODE);
        put32(
            &mut c,
            if big_offset {
                u32::MAX
            } else {
                entry.offset as u32
            },
        );
        c.extend_from_slice(entry.name.as_bytes());
        if !extra.is_empty() {
            put16(&mut c, 0x0001);
            put16(&mut c, extra.len() as u16);
            c.extend_from_slice(&extra);
        }
        self.central.write_all(&c)?;
        self.entries += 1;
        Ok(())
    }

    /// Close the last entry, write the central directory and the end records; returns `out`.
    pub fn finish(mut self) -> io::Result<W> {
        self.finish_entry()?;
        let cd_start = self.out.n;
        let cd_size = self.central.stream_position()?;
        self.central.seek(SeekFrom::Start(0))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.central.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.out.write_all(&buf[..n])?;
        }
        let zip64 = self.entries >= u64::from(u16::MAX)
            || cd_start >= u64::from(u32::MAX)
            || cd_size >= u64::from(u32::MAX);
        let mut e = Vec::with_capacity(56 + 20 + 22);
        if zip64 {
            // The central directory is written: the ZIP64 end record starts here.
            let zip64_end = self.out.n;
            put32(&mut e, ZIP64_END);
            put64(&mut e, 44);
            put16(&mut e, MADE_BY);
            put16(&mut e, VERSION);
            put32(&mut e, 0);
            put32(&mut e, 0);
            put64(&mut e, self.entries);
            put64(&mut e, self.entries);
            put64(&mut e, cd_size);
            put64(&mut e, cd_start);
            put32(&mut e, ZIP64_LOCATOR);
            put32(&mut e, 0);
            put64(&mut e, zip64_end);
            put32(&mut e, 1);
        }
        put32(&mut e, END);
        put16(&mut e, 0);
        put16(&mut e, 0);
        let count16 = if zip64 { u16::MAX } else { self.entries as u16 };
        put16(&mut e, count16);
        put16(&mut e, count16);
        put32(&mut e, if zip64 { u32::MAX } else { cd_size as u32 });
        put32(&mut e, if zip64 { u32::MAX } else { cd_start as u32 });
        put16(&mut e, 0);
        self.out.write_all(&e)?;
        self.out.flush()?;
        Ok(self.out.inner)
    }
}

fn name_len(name: &str) -> io::Result<u16> {
    u16::try_from(name.len()).map_err(|_| io::Error::other("a ZIP entry name is too long"))
}

/// MS-DOS time and date (2-second resolution, years 1980–2107).
fn dos_time(at: NaiveDateTime) -> (u16, u16) {
    let year = at.year().clamp(1980, 2107) as u16;
    let time = ((at.hour() as u16) << 11) | ((at.minute() as u16) << 5) | (at.second() as u16 / 2);
    let date = ((year - 1980) << 9) | ((at.month() as u16) << 5) | at.day() as u16;
    (time, date)
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// A writer that counts the bytes written through it: each entry's offset.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let at = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        let mut z = ZipStream::new(Vec::new(), Cursor::new(Vec::new()));
        for (name, data) in entries {
            z.start_entry(name, at).unwrap();
            for chunk in data.chunks(7) {
                z.write_data(chunk).unwrap();
            }
        }
        z.finish().unwrap()
    }

    #[test]
    fn the_end_record_points_at_a_central_directory_of_every_entry() {
        let bytes = archive(&[("a.txt", b"hello world"), ("dir/b.bin", &[0u8; 100])]);
        let end = &bytes[bytes.len() - 22..];
        assert_eq!(u32::from_le_bytes(end[0..4].try_into().unwrap()), END);
        assert_eq!(u16::from_le_bytes(end[10..12].try_into().unwrap()), 2);
        let cd_size = u32::from_le_bytes(end[12..16].try_into().unwrap()) as usize;
        let cd_start = u32::from_le_bytes(end[16..20].try_into().unwrap()) as usize;
        assert_eq!(cd_start + cd_size, bytes.len() - 22);
        let first = &bytes[cd_start..];
        assert_eq!(
            u32::from_le_bytes(first[0..4].try_into().unwrap()),
            CENTRAL_HEADER
        );
        // The first entry's CRC and sizes.
        let crc = u32::from_le_bytes(first[16..20].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(b"hello world"));
        assert_eq!(u32::from_le_bytes(first[24..28].try_into().unwrap()), 11);
        assert_eq!(&first[46..51], b"a.txt");
    }

    #[test]
    fn dos_times_count_from_1980() {
        let at = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
            .unwrap()
            .and_hms_opt(10, 30, 58)
            .unwrap();
        let (time, date) = dos_time(at);
        assert_eq!(time, (10 << 11) | (30 << 5) | 29);
        assert_eq!(date, (44 << 9) | (5 << 5) | 1);
    }
}
