//! Names of things on disk, and the checks that keep user input out of paths.
//!
//! A stored file is `store/<site>/<YYYY>/<MM>/<DD>/<file name>` with the seed's file name
//! convention `YYYYMMDDhhmmss-FROM-TO-EXTENSION-SHORTID.EXT` (SPEC §1). Both the date
//! directory and the time in the name use the site's time zone, so a file named
//! `20201124…` sits in `2020/11/24/` whichever zone the site is in. Both are computed once,
//! when the row is created, and kept in the row: the path is derivable from the row alone
//! (a crash between the rename and the commit is recoverable), and later changes of time zone
//! do not move old files.
//!
//! Every component comes from checked values: the site name and extension are validated when
//! they are created, numbers are reduced to digits, the id is a UUID, the format is checked.

use callrec_model::NewRecording;
use chrono_tz::Tz;

use crate::error::StoreError;
use callrec_numbers::digits_for_file_name;

/// The pieces of a recording's place in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorePlace {
    /// `site/YYYY/MM/DD/file_name`, relative to the store root, `/`-separated.
    pub store_path: String,
    /// The file name alone.
    pub file_name: String,
}

/// Where a recording goes in the store.
pub(crate) fn store_place(site: &str, tz: Tz, extension: &str, rec: &NewRecording) -> StorePlace {
    let local = rec.started_at.with_timezone(&tz);
    let file_name = format!(
        "{}-{}-{}-{}-{}.{}",
        local.format("%Y%m%d%H%M%S"),
        digits_for_file_name(&rec.from),
        digits_for_file_name(&rec.to),
        extension,
        rec.id.short(),
        rec.format
    );
    let store_path = format!("{}/{}/{}", site, local.format("%Y/%m/%d"), file_name);
    StorePlace {
        store_path,
        file_name,
    }
}

/// A site name: 1 to 63 lowercase letters, digits, `_` or `-`, starting with a letter or
/// digit. It is a directory name in the store.
pub fn validate_site_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "site name",
            name,
            "expected 1 to 63 lowercase letters, digits, `_` or `-`, starting with a letter or digit",
        ))
    }
}

/// An extension: 1 to 32 ASCII letters, digits, `_` or `-`. It is part of file names.
pub fn validate_extension(extension: &str) -> Result<(), StoreError> {
    let ok = !extension.is_empty()
        && extension.len() <= 32
        && extension
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "extension",
            extension,
            "expected 1 to 32 letters, digits, `_` or `-`",
        ))
    }
}

/// An audio format name: 1 to 8 lowercase letters or digits (`wav`, `mp3`). It is the file
/// extension.
pub fn validate_format(format: &str) -> Result<(), StoreError> {
    let ok = !format.is_empty()
        && format.len() <= 8
        && format
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "format",
            format,
            "expected 1 to 8 lowercase letters or digits, e.g. wav",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_model::UserId;
    use callrec_model::{Direction, RecordingId};
    use chrono::{TimeZone, Utc};

    fn recording(started_at: chrono::DateTime<Utc>, from: &str, to: &str) -> NewRecording {
        NewRecording {
            id: "01937a2b-0000-7000-8000-0000007f3a9c"
                .parse::<RecordingId>()
                .unwrap(),
            user: UserId(1),
            call_uuid: "c".into(),
            direction: Direction::Outbound,
            from: from.into(),
            to: to.into(),
            started_at,
            format: "wav".into(),
            spool_path: "/spool/x.wav".into(),
        }
    }

    #[test]
    fn file_names_follow_the_seed_convention_in_the_site_time_zone() {
        let started = Utc.with_ymd_and_hms(2020, 11, 24, 16, 42, 49).unwrap();
        let rec = recording(started, "+442920123123", "02077456456");
        let place = store_place("default", Tz::UTC, "1001", &rec);
        assert_eq!(
            place.file_name,
            "20201124164249-442920123123-02077456456-1001-7f3a9c.wav"
        );
        assert_eq!(
            place.store_path,
            "default/2020/11/24/20201124164249-442920123123-02077456456-1001-7f3a9c.wav"
        );

        // 23:30 UTC on the 24th is already the 25th in Sydney: name and directory agree.
        let late = Utc.with_ymd_and_hms(2020, 11, 24, 23, 30, 0).unwrap();
        let rec = recording(late, "anonymous", "1002");
        let place = store_place("default", chrono_tz::Australia::Sydney, "1001", &rec);
        assert_eq!(
            place.store_path,
            "default/2020/11/25/20201125103000-0-1002-1001-7f3a9c.wav"
        );
    }

    #[test]
    fn names_that_could_escape_the_store_are_refused() {
        for bad in ["", "..", "a/b", "Default", "-x", "a b", "x\0"] {
            assert!(validate_site_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_site_name("default").is_ok());
        for bad in ["", "..", "10/01", "1001 ", "ü"] {
            assert!(validate_extension(bad).is_err(), "{bad:?}");
        }
        assert!(validate_extension("1001").is_ok());
        assert!(validate_format("../wav").is_err());
        assert!(validate_format("wav").is_ok());
    }
}
