//! A progress bar on stderr for the library's long steps ([`mapwalk::progress`]), when
//! stderr is a terminal and a step has run for a second; nothing otherwise.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a step runs before its bar shows.
const QUIET_FOR: Duration = Duration::from_secs(1);

/// The current step: its name, when it started, and its bar once shown.
#[derive(Debug, Default)]
struct Bar {
    step: RefCell<Option<(String, Instant, Option<ProgressBar>)>>,
}

impl mapwalk::progress::Progress for Bar {
    fn update(&self, what: &str, done: u64, total: u64) {
        let mut step = self.step.borrow_mut();
        if step.as_ref().is_none_or(|(name, _, _)| name != what) {
            *step = Some((what.to_owned(), Instant::now(), None));
        }
        let Some((name, started, bar)) = step.as_mut() else {
            return;
        };
        if bar.is_none() && started.elapsed() >= QUIET_FOR {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "mapwalk: {msg} [{wide_bar}] {percent:>3}% of {binary_total_bytes}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(name.clone());
            *bar = Some(b);
        }
        if let Some(b) = bar {
            b.set_position(done);
        }
    }

    fn finish(&self, what: &str) {
        let mut step = self.step.borrow_mut();
        if step.as_ref().is_some_and(|(name, _, _)| name == what) {
            if let Some((_, _, Some(bar))) = step.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// Shows the library's progress on stderr when it is a terminal.
pub fn install() {
    if std::io::stderr().is_terminal() {
        mapwalk::progress::set(Some(Box::new(Bar::default())));
    }
}
