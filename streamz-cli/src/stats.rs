//! `--stats`: a live line a second on stderr (a progress bar when the sources' length is
//! known and stderr is a terminal), and a table at the end: elements into and out of each
//! stage, throughput and errors. The figures are the core's metrics of the stages' nodes
//! (`enable_metrics`, `Graph::snapshot`): `--stats` adds nothing to the graph.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use streamz_core::{CheckpointInfo, Checkpoints, Stream};

use crate::graph::{Figure, PartitionFigures, Partitions, StageStats};

pub(crate) struct Reporter {
    stages: Vec<StageStats>,
    /// The sources: holding them keeps their graphs, and so their figures, to the end.
    graphs: Vec<Stream<Value>>,
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
    partitions: Partitions,
    checkpoints: Option<Arc<Checkpoints>>,
}

/// Every node's elements in and out, by id, across the graphs.
#[derive(Default)]
struct Figures(HashMap<u64, (u64, u64)>);

impl Figures {
    fn read(graphs: &[Stream<Value>]) -> Self {
        let mut figures = HashMap::new();
        for source in graphs {
            for node in source.graph().snapshot().nodes {
                figures.insert(node.id, (node.elements_in, node.elements_out));
            }
        }
        Figures(figures)
    }

    fn get(&self, figure: Option<Figure>) -> Option<u64> {
        Some(match figure? {
            Figure::In(id) => self.0.get(&id).map_or(0, |f| f.0),
            Figure::Out(id) => self.0.get(&id).map_or(0, |f| f.1),
        })
    }
}

/// One line: what each stage has let out so far (what sinks have taken in), and the broker
/// sources' lag.
fn live(
    stages: &[StageStats],
    figures: &Figures,
    errors: u64,
    partitions: &[PartitionFigures],
) -> String {
    let mut s = String::new();
    for stage in stages {
        let n = figures
            .get(stage.output)
            .or(figures.get(stage.input))
            .unwrap_or(0);
        let sep = if s.is_empty() { "" } else { " | " };
        let _ = write!(s, "{sep}{}: {n}", stage.name);
    }
    if errors > 0 {
        let _ = write!(s, " | errors: {errors}");
    }
    if partitions.iter().any(|p| p.lag.is_some()) {
        let lag: i64 = partitions.iter().filter_map(|p| p.lag).sum();
        let _ = write!(s, " | lag: {lag}");
    }
    s
}

/// The broker sources' partitions: committed position, high watermark and lag of each.
fn partition_table(partitions: &[PartitionFigures]) -> String {
    let shown = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let mut out = format!(
        "{:<32}  {:>12}  {:>14}  {:>10}\n",
        "partition", "committed", "high watermark", "lag"
    );
    for p in partitions {
        let name = format!("{}/{}", p.topic, p.partition);
        let _ = writeln!(
            out,
            "{name:<32}  {:>12}  {:>14}  {:>10}",
            shown(p.committed),
            shown(p.high_watermark),
            shown(p.lag)
        );
    }
    out
}

/// The table printed at the end.
/// What a run came to, for the last line.
pub(crate) struct Totals {
    pub(crate) emitted: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
}

fn summary(stages: &[StageStats], figures: &Figures, outcome: &Totals) -> String {
    let width = stages
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, 48);
    let shown = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let mut out = format!("{:<width$}  {:>10}  {:>10}\n", "stage", "in", "out");
    for stage in stages {
        let mut name: String = stage.name.chars().take(width).collect();
        if stage.name.chars().count() > width {
            name.pop();
            name.push('…');
        }
        let _ = writeln!(
            out,
            "{name:<width$}  {:>10}  {:>10}",
            shown(figures.get(stage.input)),
            shown(figures.get(stage.output)),
        );
    }
    let secs = outcome.elapsed.as_secs_f64();
    let _ = writeln!(
        out,
        "{} element{} in {:.2} s ({:.0} per second), {} error{}",
        outcome.emitted,
        if outcome.emitted == 1 { "" } else { "s" },
        secs,
        outcome.emitted as f64 / secs.max(1e-9),
        outcome.errors,
        if outcome.errors == 1 { "" } else { "s" },
    );
    out
}

/// A checkpoint's figures: its number, how long ago, its size, the pause and the write.
fn checkpoint_line(info: &CheckpointInfo) -> String {
    let ago = SystemTime::now()
        .duration_since(info.taken_at)
        .unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "checkpoint #{} ({:.1} s ago, {} KB, paused {:.1} ms, written in {:.1} ms)",
        info.id,
        ago.as_secs_f64(),
        info.size.div_ceil(1024),
        ms(info.pause),
        ms(info.write)
    )
}

impl Reporter {
    pub(crate) fn start(
        stages: Vec<StageStats>,
        graphs: Vec<Stream<Value>>,
        emitted: Arc<AtomicU64>,
        errors: Arc<AtomicU64>,
        total: Option<u64>,
        partitions: Partitions,
        checkpoints: Option<Arc<Checkpoints>>,
    ) -> Self {
        let template = match total {
            Some(_) => "{bar:30} {pos}/{len} {per_sec} {msg}",
            None => "{pos} elements {per_sec} {msg}",
        };
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
            .with_style(ProgressStyle::with_template(template).expect("a valid template"));
        for graph in &graphs {
            graph.enable_metrics();
        }
        let (b, s, g, p, c) = (
            bar.clone(),
            stages.clone(),
            graphs.clone(),
            partitions.clone(),
            checkpoints.clone(),
        );
        let start = Instant::now();
        let ticker = tokio::spawn(async move {
            let second = Duration::from_secs(1);
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
            loop {
                every.tick().await;
                let e = emitted.load(Ordering::Relaxed);
                let mut line = live(
                    &s,
                    &Figures::read(&g),
                    errors.load(Ordering::Relaxed),
                    &p.now(),
                );
                if let Some(info) = c.as_ref().and_then(|c| c.last()) {
                    line.push_str(&format!(", {}", checkpoint_line(&info)));
                }
                b.set_position(e);
                if b.is_hidden() {
                    // not a terminal: a plain line a second
                    eprintln!("{:.0} s: {line}", start.elapsed().as_secs_f64());
                } else {
                    b.set_message(line);
                }
            }
        });
        Reporter {
            stages,
            graphs,
            bar,
            ticker,
            partitions,
            checkpoints,
        }
    }

    pub(crate) fn finish(self, outcome: &Totals) {
        self.ticker.abort();
        self.bar.finish_and_clear();
        let figures = Figures::read(&self.graphs);
        eprint!("{}", summary(&self.stages, &figures, outcome));
        let partitions = self.partitions.now();
        if !partitions.is_empty() {
            eprint!("{}", partition_table(&partitions));
        }
        if let Some(info) = self.checkpoints.as_ref().and_then(|c| c.last()) {
            eprintln!("last {}", checkpoint_line(&info));
        }
    }
}
