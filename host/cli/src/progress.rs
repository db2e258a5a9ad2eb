//! Progress bars on standard error (only when it is a terminal): bytes and
//! rate, and an ETA when the total is known.

use indicatif::{ProgressBar, ProgressStyle};

/// The engine's [`kast_engine::Progress`] drawn with indicatif.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new(what: &str, total: Option<u64>) -> Bar {
        let (bar, template) = match total {
            Some(t) => (
                ProgressBar::new(t),
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ),
            None => (
                ProgressBar::no_length(),
                "{spinner} {msg} {bytes} {binary_bytes_per_sec} {elapsed}",
            ),
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Bar { bar }
    }
}

impl kast_engine::Progress for Bar {
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }

    fn warning(&self, message: &str) {
        self.bar.println(format!(
            "warning: {}",
            crate::views::shown(message.as_bytes())
        ));
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
