//! `/metrics`: the API's own metrics, the store's figures read at scrape time, and the
//! daemon's metrics, as one OpenMetrics text (prometheus-client).
//!
//! The store's figures (recordings by state, bytes stored, users over quota, the data
//! filesystem's size and free space) are read when Prometheus scrapes rather than kept up to
//! date on every change: a scrape every 15 s costs two indexed queries, and the numbers can
//! never drift from the index.

use std::path::Path;

use callrec_model::RecordingState;
use callrec_store::UserUsage;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The content type of the `/metrics` reply.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the store holds, as read at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Recordings per state.
    pub by_state: Vec<(RecordingState, u64)>,
    /// Storage per user.
    pub usage: Vec<UserUsage>,
}

/// The API's metrics.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    request_seconds: Histogram,
    recordings: Family<Labels, Gauge>,
    stored_bytes: Gauge,
    users_over_quota: Gauge,
    fs_size_bytes: Gauge,
    fs_free_bytes: Gauge,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics::new()
    }
}

impl ApiMetrics {
    /// Every metric, registered under `callrec_`.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = ApiMetrics {
            requests: Family::default(),
            // 0.5 ms to ~16 s.
            request_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            recordings: Family::default(),
            stored_bytes: Gauge::default(),
            users_over_quota: Gauge::default(),
            fs_size_bytes: Gauge::default(),
            fs_free_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        let r = registry.sub_registry_with_prefix("callrec");
        r.register(
            "api_requests",
            "API requests answered, by method and status",
            m.requests.clone(),
        );
        r.register(
            "api_request_seconds",
            "Time to answer an API request (to the first byte of the body)",
            m.request_seconds.clone(),
        );
        r.register(
            "recordings",
            "Recordings in the index, by state",
            m.recordings.clone(),
        );
        r.register(
            "store_used_bytes",
            "Bytes of stored recordings",
            m.stored_bytes.clone(),
        );
        r.register(
            "users_over_quota",
            "Users whose stored recordings exceed their site's quota",
            m.users_over_quota.clone(),
        );
        r.register(
            "data_filesystem_size_bytes",
            "Size of the filesystem holding the data dir",
            m.fs_size_bytes.clone(),
        );
        r.register(
            "data_filesystem_free_bytes",
            "Space available to callrec on the filesystem holding the data dir",
            m.fs_free_bytes.clone(),
        );
        ApiMetrics { registry, ..m }
    }

    /// Count an answered request.
    pub fn observe_request(&self, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("method".to_owned(), method_label(method).to_owned()),
                ("status".to_owned(), status.to_string()),
            ])
            .inc();
        self.request_seconds.observe(seconds);
    }

    /// Set the store's figures and the data filesystem's (when it can be read).
    pub fn set_store(&self, figures: &StoreFigures, data_dir: &Path) {
        for state in RecordingState::ALL {
            let n = figures
                .by_state
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            self.recordings
                .get_or_create(&vec![("state".to_owned(), state.as_str().to_owned())])
                .set(saturating_i64(n));
        }
        let bytes: u64 = figures.usage.iter().map(|u| u.bytes).sum();
        self.stored_bytes.set(saturating_i64(bytes));
        let over = figures.usage.iter().filter(|u| u.over_quota).count();
        self.users_over_quota.set(saturating_i64(over as u64));
        match nix::sys::statvfs::statvfs(data_dir) {
            Ok(fs) => {
                let frag = fs.fragment_size();
                self.fs_size_bytes
                    .set(saturating_i64(fs.blocks().saturating_mul(frag)));
                self.fs_free_bytes
                    .set(saturating_i64(fs.blocks_available().saturating_mul(frag)));
            }
            Err(e) => tracing::warn!(error = %e, dir = %data_dir.display(), "statvfs failed"),
        }
    }

    /// The API's metrics followed by `daemon`'s, as one OpenMetrics document.
    pub fn encode_with(&self, daemon: &str) -> String {
        let mut own = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut own, &self.registry);
        merge(&[&own, daemon])
    }
}

/// The `method` label of a request: a standard method by name, anything else `other`. A
/// client may send any token as a method (each a 405), and one series per invented name
/// would let anyone grow the metrics without bound.
fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Concatenate OpenMetrics documents: each ends in `# EOF`, and the whole must end in exactly
/// one.
pub fn merge(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        for line in part.lines() {
            if line.trim() == "# EOF" || line.is_empty() {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_model::{QuotaPolicy, UserId};

    #[test]
    fn documents_merge_with_one_eof() {
        let m = merge(&["# TYPE a gauge\na 1\n# EOF\n", "b 2\n# EOF\n", ""]);
        assert_eq!(m, "# TYPE a gauge\na 1\nb 2\n# EOF\n");
    }

    #[test]
    fn store_figures_become_gauges() {
        let m = ApiMetrics::new();
        let usage = |bytes, over| UserUsage {
            user_id: UserId(1),
            site: "default".into(),
            extension: "1001".into(),
            bytes,
            files: 1,
            quota_bytes: 10,
            quota_policy: QuotaPolicy::Alert,
            over_quota: over,
        };
        m.set_store(
            &StoreFigures {
                by_state: vec![(RecordingState::Stored, 7)],
                usage: vec![usage(20, true), usage(5, false)],
            },
            Path::new("/"),
        );
        let text = m.encode_with("");
        assert!(
            text.contains("callrec_recordings{state=\"stored\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("callrec_recordings{state=\"deleted\"} 0"),
            "{text}"
        );
        assert!(text.contains("callrec_store_used_bytes 25"), "{text}");
        assert!(text.contains("callrec_users_over_quota 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
