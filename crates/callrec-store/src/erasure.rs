//! Erasure by phone number (issue 13): a caller asks for what is held about them to be
//! erased (UK GDPR art. 17), unless a legal obligation says keep.
//!
//! Every recording of a site with the number as either party, in any form it was stored in
//! (`0…`, `44…`, `+44…`: both sides are compared normalised, as search does), is deleted like
//! an admin's delete (file removed, tombstone kept, one `recording.delete` audit entry each),
//! and the tombstone keeps neither number (in its parties or its file name) nor notes. A recording on hold, or kept by the
//! site's legal hold, is refused with the reason and left alone. One `erasure` entry names
//! who asked, why, and what was erased and refused; it identifies the number by its SHA-256,
//! so the audit log does not become a new copy of the data erased. A dry run changes nothing.

use rusqlite::params;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::{self, Event};
use crate::error::StoreError;
use crate::records::{Access, Site};
use crate::retention::{self, Victim};
use crate::store::{Store, expires_at};
use crate::view::{ReadView, from_ms, ms};
use callrec_model::RecordingId;

/// A recording the erasure did not touch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The recording.
    pub id: RecordingId,
    /// Why it is kept.
    pub reason: String,
}

/// What an erasure did, or (dry run) would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// The number as searched (normalised with the site's number plan).
    pub number: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Recordings erased (or that would be).
    pub erased: Vec<RecordingId>,
    /// Recordings kept, with the reason.
    pub refused: Vec<Refusal>,
}

impl std::fmt::Display for ErasureReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would erase"
        } else {
            "erased"
        };
        writeln!(
            f,
            "{} {verb} {} recording(s); {} kept",
            self.number,
            self.erased.len(),
            self.refused.len()
        )?;
        for id in &self.erased {
            writeln!(
                f,
                "  {} {id}",
                if self.dry_run {
                    "WOULD ERASE"
                } else {
                    "ERASED"
                }
            )?;
        }
        for r in &self.refused {
            writeln!(f, "  KEPT {}: {}", r.id, r.reason)?;
        }
        Ok(())
    }
}

impl Store {
    /// The number as the site normalises it, and every recording of the site (stored or
    /// failed, held ones included) with it as either party: what a subject access request
    /// exports and an erasure considers.
    pub fn find_by_number(
        &self,
        site: &str,
        number: &str,
        access: &Access,
    ) -> Result<(String, Vec<RecordingId>), StoreError> {
        access.require_admin("find recordings by number")?;
        let (_, normalised, matches) = matching(&self.conn, site, number, access)?;
        Ok((normalised, matches.into_iter().map(|m| m.id).collect()))
    }

    /// The audit entry of a subject access export of `number` (normalised): who, why, which
    /// recordings; the number only as its SHA-256.
    pub fn record_subject_export(
        &mut self,
        site: &str,
        number: &str,
        reason: &str,
        ids: &[RecordingId],
        access: &Access,
    ) -> Result<(), StoreError> {
        let site_id = self.view().site(site)?.id;
        self.record_event(
            Some(site_id),
            &access.actor,
            "subject_access.export",
            &number_target(number),
            &json!({"reason": reason.trim(), "recordings": ids}),
        )?;
        Ok(())
    }

    /// Erases every recording of `site` with `number` as either party (see the module doc).
    /// `reason` (the request's reference, say) is required and audited.
    pub fn erase_number(
        &mut self,
        site: &str,
        number: &str,
        reason: &str,
        access: &Access,
        dry_run: bool,
    ) -> Result<ErasureReport, StoreError> {
        access.require_admin("erase recordings by number")?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(StoreError::invalid(
                "reason",
                reason,
                "say why (the request it answers): it is written to the audit log",
            ));
        }
        let now = self.now();
        let tx = self.begin()?;
        let (site_row, normalised, matches) = matching(&tx, site, number, access)?;
        let mut report = ErasureReport {
            number: normalised.clone(),
            dry_run,
            erased: Vec::new(),
            refused: Vec::new(),
        };
        let mut victims = Vec::new();
        for Match {
            id,
            hold,
            started_ms,
        } in matches
        {
            let until = expires_at(from_ms(started_ms)?, &site_row.settings);
            if hold {
                report.refused.push(Refusal {
                    id,
                    reason: "on hold".to_owned(),
                });
            } else if site_row.settings.legal_hold && until > now {
                report.refused.push(Refusal {
                    id,
                    reason: format!(
                        "kept by the legal hold of site {} until {}",
                        site_row.name,
                        until.format("%Y-%m-%d")
                    ),
                });
            } else {
                victims.push(Victim::of(&tx, &id)?);
                report.erased.push(id);
            }
        }
        if dry_run {
            return Ok(report);
        }
        let why = format!("erased at the request of the number's holder: {reason}");
        let removals = retention::tombstone(
            &tx,
            &self.paths,
            &victims,
            now,
            &access.actor,
            "recording.delete",
            &why,
        )?;
        let seqs = json!(victims.iter().map(|v| v.seq).collect::<Vec<_>>()).to_string();
        tx.prepare_cached(
            "DELETE FROM notes WHERE recording_seq IN (SELECT value FROM json_each(?1))",
        )
        .and_then(|mut s| s.execute([&seqs]))
        .map_err(StoreError::sql("erase notes"))?;
        tx.prepare_cached(
            "UPDATE recordings SET from_raw = '', from_norm = '', to_raw = '', to_norm = '',
                 note_count = 0,
                 file_name = 'erased-' || id || '.' || format,
                 store_path = 'erased/' || id
             WHERE seq IN (SELECT value FROM json_each(?1))",
        )
        .and_then(|mut s| s.execute([&seqs]))
        .map_err(StoreError::sql("erase numbers"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(site_row.id),
                actor: &access.actor,
                action: "erasure",
                target: &number_target(&normalised),
                detail: &json!({
                    "reason": reason,
                    "erased": report.erased,
                    "refused": report.refused,
                })
                .to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit erasure"))?;
        retention::remove_files(self, &removals)?;
        Ok(report)
    }
}

/// A recording with the number as a party.
struct Match {
    id: RecordingId,
    hold: bool,
    started_ms: i64,
}

/// `site` (which `access` must see), `number` as it normalises it, and every recording of
/// the site (stored or failed, held ones included) with it as either party, oldest first.
fn matching(
    conn: &rusqlite::Connection,
    site: &str,
    number: &str,
    access: &Access,
) -> Result<(Site, String, Vec<Match>), StoreError> {
    let site_row = ReadView::new(conn).site(site)?;
    if !access.may_see_site(site_row.id) {
        return Err(StoreError::UnknownSite(site.to_owned()));
    }
    let normalised = callrec_numbers::normalise(number, &site_row.settings.number_plan());
    if normalised.is_empty() {
        return Err(StoreError::invalid("number", number, "not a phone number"));
    }
    let matches = conn
        .prepare_cached(
            "SELECT id, hold, started_at FROM recordings
             WHERE site_id = ?1 AND (from_norm = ?2 OR to_norm = ?2)
               AND state IN ('stored', 'failed')
             ORDER BY seq",
        )
        .and_then(|mut s| {
            s.query_map(params![site_row.id.0, normalised], |r| {
                Ok(Match {
                    id: crate::view::parse_col(r, 0)?,
                    hold: r.get(1)?,
                    started_ms: r.get(2)?,
                })
            })?
            .collect()
        })
        .map_err(StoreError::sql("find recordings by number"))?;
    Ok((site_row, normalised, matches))
}

/// The audit target naming a number without writing it down: its SHA-256.
fn number_target(normalised: &str) -> String {
    format!("number-sha256:{}", hex::encode(Sha256::digest(normalised)))
}
