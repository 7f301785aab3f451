//! HTTP conditional and range requests for `/recordings/{id}/audio` (RFC 9110 §13, §14), as
//! plain functions of the request headers and the file's length and hash.
//!
//! A browser's audio player seeks with `Range: bytes=N-`; download managers resume with it;
//! archive clients revalidate with `If-None-Match`. Everything here is decided before a byte
//! of the file is read, and nothing here touches the file.

/// At most this many ranges in one request: more is how a client makes a server do a lot of
/// work for a small request (RFC 9110 §14.2 lets a server refuse).
pub const MAX_RANGES: usize = 16;

/// One satisfiable range, both ends inclusive (as `Content-Range` writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub first: u64,
    /// Last byte.
    pub last: u64,
}

impl ByteRange {
    /// How many bytes it covers.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value for a file of `total` bytes.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.first, self.last, total)
    }
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The whole file (200).
    Full,
    /// Some ranges of it (206): one range as is, several as `multipart/byteranges`.
    Ranges(Vec<ByteRange>),
}

/// Why a `Range` header cannot be served (every case is a 416 with `Content-Range: bytes */len`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The header does not follow the `bytes=` syntax.
    #[error("malformed Range header: {0}")]
    Malformed(String),
    /// More than [`MAX_RANGES`] ranges.
    #[error("too many ranges ({0}; at most {MAX_RANGES})")]
    TooMany(usize),
    /// No range lies within the file.
    #[error("no requested range lies within the file's {0} bytes")]
    Unsatisfiable(u64),
}

/// The strong entity tag of a file with this SHA-256: the hash, quoted.
pub fn etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 §13.1.2): the
/// client's copy is current and a 304 will do.
pub fn none_match(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag.strip_prefix("W/").unwrap_or(tag) == etag.strip_prefix("W/").unwrap_or(etag)
    })
}

/// Whether a `Range` header should be honoured given `If-Range` (RFC 9110 §13.1.5): only if
/// the validator is our current strong tag. A date never matches: no `Last-Modified` is sent.
pub fn if_range_allows(if_range: Option<&str>, etag: &str) -> bool {
    match if_range.map(str::trim) {
        None => true,
        Some(v) => v == etag,
    }
}

/// What a `Range` header asks of a file of `len` bytes.
///
/// No header, or a unit other than `bytes`, means the whole file (RFC 9110 §14.2: unknown
/// units are ignored). Ranges that start beyond the end are dropped; if none is left the
/// request is unsatisfiable. Ranges are kept in the order asked for, unless some overlap or
/// touch: then they are coalesced, in file order (RFC 9110 §14.2 lets a server do so), so
/// no byte is sent twice and a reply is never larger than the file plus multipart framing
/// (sixteen copies of the whole file for a 16-range header, before).
pub fn select(header: Option<&str>, len: u64) -> Result<Selection, RangeError> {
    let Some(header) = header.map(str::trim) else {
        return Ok(Selection::Full);
    };
    let Some((unit, specs)) = header.split_once('=') else {
        return Err(RangeError::Malformed(format!(
            "expected `bytes=first-last`, got `{}`",
            clip(header)
        )));
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ok(Selection::Full);
    }
    let specs: Vec<&str> = specs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() {
        return Err(RangeError::Malformed("no range given".to_owned()));
    }
    if specs.len() > MAX_RANGES {
        return Err(RangeError::TooMany(specs.len()));
    }
    let mut ranges = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(r) = resolve(parse_spec(spec)?, len) {
            ranges.push(r);
        }
    }
    if ranges.is_empty() {
        return Err(RangeError::Unsatisfiable(len));
    }
    Ok(Selection::Ranges(coalesce(ranges)))
}

/// The ranges as asked if no two overlap or touch; else merged into disjoint ranges in file
/// order.
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| r.first);
    let touching = sorted
        .windows(2)
        .any(|w| w[1].first <= w[0].last.saturating_add(1));
    if !touching {
        return ranges;
    }
    ranges.clear();
    for r in sorted {
        match ranges.last_mut() {
            Some(prev) if r.first <= prev.last.saturating_add(1) => {
                prev.last = prev.last.max(r.last);
            }
            _ => ranges.push(r),
        }
    }
    ranges
}

/// One range as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

fn parse_spec(spec: &str) -> Result<Spec, RangeError> {
    let bad = || RangeError::Malformed(format!("`{}` is not a byte range", clip(spec)));
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Err(bad()),
        (true, false) => Ok(Spec::Suffix(number(b).ok_or_else(bad)?)),
        (false, true) => Ok(Spec::From {
            first: number(a).ok_or_else(bad)?,
            last: None,
        }),
        (false, false) => {
            let (first, last) = (number(a).ok_or_else(bad)?, number(b).ok_or_else(bad)?);
            if last < first {
                return Err(RangeError::Malformed(format!(
                    "`{}` ends before it starts",
                    clip(spec)
                )));
            }
            Ok(Spec::From {
                first,
                last: Some(last),
            })
        }
    }
}

/// Digits only; a number too large for u64 saturates (it lies beyond any file anyway).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

fn resolve(spec: Spec, len: u64) -> Option<ByteRange> {
    if len == 0 {
        return None;
    }
    match spec {
        Spec::From { first, last } if first < len => Some(ByteRange {
            first,
            last: last.map_or(len - 1, |l| l.min(len - 1)),
        }),
        Spec::From { .. } => None,
        Spec::Suffix(0) => None,
        Spec::Suffix(n) => Some(ByteRange {
            first: len - n.min(len),
            last: len - 1,
        }),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(header: &str, len: u64) -> Vec<(u64, u64)> {
        match select(Some(header), len) {
            Ok(Selection::Ranges(r)) => r.iter().map(|r| (r.first, r.last)).collect(),
            other => panic!("{header}: {other:?}"),
        }
    }

    #[test]
    fn the_usual_forms_select_the_bytes_they_name() {
        assert_eq!(ranges("bytes=0-99", 1000), [(0, 99)]);
        assert_eq!(ranges("bytes=500-", 1000), [(500, 999)]);
        assert_eq!(ranges("bytes=-100", 1000), [(900, 999)]);
        assert_eq!(ranges("bytes=990-2000", 1000), [(990, 999)]);
        assert_eq!(ranges("bytes=-5000", 1000), [(0, 999)]);
        assert_eq!(ranges("BYTES = 0-0 , 10-19", 1000), [(0, 0), (10, 19)]);
    }

    #[test]
    fn ranges_beyond_the_end_are_dropped_and_none_left_is_unsatisfiable() {
        assert_eq!(ranges("bytes=0-9,5000-6000", 1000), [(0, 9)]);
        assert_eq!(
            select(Some("bytes=1000-"), 1000),
            Err(RangeError::Unsatisfiable(1000))
        );
        assert_eq!(
            select(Some("bytes=-0"), 1000),
            Err(RangeError::Unsatisfiable(1000))
        );
        assert_eq!(
            select(Some("bytes=0-"), 0),
            Err(RangeError::Unsatisfiable(0))
        );
        assert_eq!(
            select(Some("bytes=99999999999999999999999-"), 10),
            Err(RangeError::Unsatisfiable(10))
        );
    }

    #[test]
    fn overlapping_and_touching_ranges_are_coalesced_and_no_byte_is_sent_twice() {
        // The adversarial trial's header: 16 copies of the whole file.
        let whole = vec!["0-"; MAX_RANGES].join(",");
        assert_eq!(ranges(&format!("bytes={whole}"), 1000), vec![(0, 999)]);
        assert_eq!(ranges("bytes=0-99,50-149", 1000), vec![(0, 149)]);
        assert_eq!(ranges("bytes=100-199,0-99", 1000), vec![(0, 199)]);
        assert_eq!(
            ranges("bytes=500-599,-100,0-9", 1000),
            vec![(500, 599), (900, 999), (0, 9)]
        );
        assert_eq!(
            ranges("bytes=-100,950-,0-9,5-20", 1000),
            vec![(0, 20), (900, 999)]
        );
    }

    #[test]
    fn malformed_headers_are_refused_and_other_units_ignored() {
        for bad in [
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x10-",
        ] {
            assert!(
                matches!(select(Some(bad), 100), Err(RangeError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(select(Some("items=0-5"), 100), Ok(Selection::Full));
        assert_eq!(select(None, 100), Ok(Selection::Full));
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(
            select(Some(&many), 100),
            Err(RangeError::TooMany(MAX_RANGES + 1))
        );
    }

    #[test]
    fn validators_match_the_quoted_hash_only() {
        let tag = etag("abc");
        assert_eq!(tag, "\"abc\"");
        assert!(none_match("\"abc\"", &tag));
        assert!(none_match("\"x\", W/\"abc\"", &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"abd\"", &tag));
        assert!(if_range_allows(None, &tag));
        assert!(if_range_allows(Some("\"abc\""), &tag));
        assert!(!if_range_allows(Some("W/\"abc\""), &tag));
        assert!(!if_range_allows(
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            &tag
        ));
    }
}
