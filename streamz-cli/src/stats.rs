//! `--stats`: a live line a second on stderr, a progress bar when the length is known, and a
//! summary at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::Outcome;

pub(crate) struct Reporter {
    stages: Vec<(String, Arc<AtomicU64>)>,
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

fn line(stages: &[(String, Arc<AtomicU64>)], emitted: u64, errors: u64) -> String {
    let mut s = format!("in {emitted}");
    for (name, n) in stages {
        s.push_str(&format!(" | {name}: {}", n.load(Ordering::Relaxed)));
    }
    if errors > 0 {
        s.push_str(&format!(" | errors {errors}"));
    }
    s
}

impl Reporter {
    pub(crate) fn start(
        stages: Vec<(String, Arc<AtomicU64>)>,
        emitted: Arc<AtomicU64>,
        errors: Arc<AtomicU64>,
        total: Option<u64>,
    ) -> Self {
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} {msg}")
                        .expect("a valid template"),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{pos} elements {per_sec} {msg}")
                    .expect("a valid template"),
            ),
        };
        let (b, s) = (bar.clone(), stages.clone());
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let e = emitted.load(Ordering::Relaxed);
                b.set_position(e);
                b.set_message(line(&s, e, errors.load(Ordering::Relaxed)));
                if b.is_hidden() {
                    // not a terminal: a plain line a second
                    eprintln!("{}", line(&s, e, errors.load(Ordering::Relaxed)));
                }
            }
        });
        Reporter {
            stages,
            bar,
            ticker,
        }
    }

    pub(crate) fn finish(self, outcome: &Outcome) {
        self.ticker.abort();
        self.bar.finish_and_clear();
        let secs = outcome.elapsed.as_secs_f64();
        eprintln!(
            "{} in {:.2}s ({:.0}/s), {} error(s)",
            line(&self.stages, outcome.emitted, outcome.errors),
            secs,
            outcome.emitted as f64 / secs.max(1e-9),
            outcome.errors
        );
    }
}
