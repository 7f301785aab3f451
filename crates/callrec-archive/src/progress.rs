//! The progress bar: recordings done out of those to do, bytes and rate. Drawn on stderr
//! only when it is a terminal (indicatif hides it otherwise), and not at all when turned off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar of one run.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    bytes: AtomicU64,
    started: Instant,
}

impl Progress {
    /// A bar for `total` recordings; hidden unless `show` (and stderr is a terminal).
    pub fn new(total: u64, show: bool) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} recordings, {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// `n` more bytes received.
    pub fn bytes(&self, n: u64) {
        let before = self.bytes.fetch_add(n, Ordering::Relaxed);
        // Redraw the figures about every MiB.
        if (before >> 20) != ((before + n) >> 20) {
            self.refresh();
        }
    }

    /// One more recording done.
    pub fn recording_done(&self) {
        self.bar.inc(1);
        self.refresh();
    }

    fn refresh(&self) {
        if self.bar.is_hidden() {
            return;
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{} at {}/s",
            HumanBytes(bytes),
            HumanBytes((bytes as f64 / secs) as u64)
        ));
    }

    /// The run is over.
    pub fn finish(&self) {
        self.refresh();
        self.bar.finish();
    }
}
