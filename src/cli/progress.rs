//! Progress bars on long pulls and applies, when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};

use coexist_connector::Progress;

use crate::engine::ProgressSink;

/// Shows indicatif bars on stderr.
pub struct Bars;

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl ProgressSink for Bars {
    fn start(&self, label: &str, total: Option<u64>) -> Box<dyn Progress> {
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg} {pos} objects")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Box::new(Bar(bar))
    }
}
