//! Building a streamz graph from a parsed pipeline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde_json::Value;
use streamz_core::{Executor, GraphNode, Stream};

use crate::error::{CliError, nearest};
use crate::flow::Flow;
use crate::lex::Word;
use crate::ops::{Args, Build, Role, Source, all, find, lookup, pooled_list, stdout_sink};
use crate::parse::{Line, Program};

/// A source stream, what feeds it, and the stage that made it (for messages).
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) stream: Stream<Value>,
    pub(crate) source: Source,
    pub(crate) name: String,
}

/// A built graph, ready to run.
#[derive(Debug)]
pub(crate) struct Graph {
    pub(crate) feeds: Vec<Feed>,
    /// `count` sinks' counters, printed at the end.
    pub(crate) counts: Vec<Arc<AtomicU64>>,
    /// The user's stages, for `--stats` (which reads the core's metrics of their nodes).
    pub(crate) stages: Vec<StageStats>,
    /// Set when stdout is gone (a closed pipe): the sources stop.
    pub(crate) stdout_closed: Arc<AtomicBool>,
    /// Whether a sink writes somewhere other than stdout (a file), so a closed stdout still
    /// leaves something to drain into.
    pub(crate) file_sinks: bool,
}

/// One stage the user wrote, for `--stats`: where its elements in and out are counted.
/// Sources have no input, sinks no output, and the stages between `scatter` and `gather`
/// count as one.
#[derive(Debug, Clone)]
pub(crate) struct StageStats {
    pub(crate) name: String,
    pub(crate) input: Option<Figure>,
    pub(crate) output: Option<Figure>,
}

/// A count the core keeps for a node ([`streamz_core::NodeSnapshot`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Figure {
    /// The elements into the node (the stage shown under this id, conversions included).
    In(u64),
    /// The elements out of it.
    Out(u64),
}

impl StageStats {
    fn node(name: &str, id: u64) -> Self {
        StageStats {
            name: name.to_owned(),
            input: Some(Figure::In(id)),
            output: Some(Figure::Out(id)),
        }
    }
}

/// What the graph runs on.
pub(crate) struct Runtime {
    pub(crate) executor: Arc<dyn Executor>,
    #[cfg(feature = "rayon")]
    pub(crate) pool: Option<streamz_rayon::Pool>,
    pub(crate) json_input: bool,
}

/// Builds the graph of `program`.
pub(crate) fn build(program: &Program, src: &str, rt: &Runtime) -> Result<Graph, CliError> {
    let mut graph = Graph {
        feeds: Vec::new(),
        counts: Vec::new(),
        stages: Vec::new(),
        stdout_closed: Arc::default(),
        file_sinks: false,
    };
    // Names first, so lines may refer to streams defined further down.
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, line) in program.lines.iter().enumerate() {
        if let Some(name) = &line.name {
            if find(&name.text).is_some() {
                return Err(CliError::at(
                    format!("`{}` is an operator; it cannot name a stream", name.text),
                    name.span.clone(),
                ));
            }
            if names.insert(name.text.clone(), i).is_some() {
                return Err(CliError::at(
                    format!("the stream `{}` is defined twice", name.text),
                    name.span.clone(),
                ));
            }
        }
    }
    let mut built: HashMap<String, Stream<Value>> = HashMap::new();
    let mut consumed: HashMap<String, bool> = HashMap::new();
    let mut pending: Vec<usize> = (0..program.lines.len()).collect();
    let mut tails: Vec<(usize, Stream<Value>, bool)> = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut still = Vec::new();
        for i in pending {
            let line = &program.lines[i];
            let needs = references(line, &names);
            if let Some(missing) = needs.iter().find(|n| !names.contains_key(n.text.as_str())) {
                return Err(unknown_stream(missing, &names));
            }
            if needs.iter().all(|n| built.contains_key(&n.text)) {
                for n in &needs {
                    consumed.insert(n.text.clone(), true);
                }
                let (tail, has_sink) = build_line(line, src, rt, &built, &mut graph)?;
                if let Some(name) = &line.name {
                    built.insert(name.text.clone(), tail.clone());
                }
                tails.push((i, tail, has_sink));
            } else {
                still.push(i);
            }
        }
        if still.len() == before {
            let line = &program.lines[still[0]];
            let span = line.stages[0].span.clone();
            return Err(
                CliError::at("these streams refer to each other in a cycle", span)
                    .help("a stream can only use streams that do not, in turn, use it"),
            );
        }
        pending = still;
    }
    // A line that ends without a sink, and that no other line uses, prints to stdout.
    for (i, tail, has_sink) in tails {
        let line = &program.lines[i];
        let used = line
            .name
            .as_ref()
            .is_some_and(|n| consumed.contains_key(&n.text));
        if !has_sink && !used {
            stdout_sink(&tail, &graph.stdout_closed);
        }
    }
    Ok(graph)
}

/// The names a line uses: a leading stream name, and the streams of its joins.
fn references<'a>(line: &'a Line, names: &HashMap<String, usize>) -> Vec<&'a Word> {
    let mut out = Vec::new();
    for (k, stage) in line.stages.iter().enumerate() {
        let op = stage.op.text.as_str();
        if k == 0 && names.contains_key(op) && stage.positional.is_empty() {
            out.push(&stage.op);
        }
        if find(op).is_some_and(|op| matches!(op.build, Build::Join(_))) {
            out.extend(stage.positional.iter());
        }
    }
    out
}

fn unknown_stream(word: &Word, names: &HashMap<String, usize>) -> CliError {
    let err = CliError::at(
        format!("there is no stream named `{}`", word.text),
        word.span.clone(),
    );
    match nearest(&word.text, names.keys().map(String::as_str)) {
        Some(near) => err.help(format!("did you mean `{near}`?")),
        None if names.is_empty() => err.help("name a stream with a line `name = stages`"),
        None => err.help(format!(
            "the streams are {}",
            names
                .keys()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Builds one line; returns its last stream and whether it ended in a sink.
fn build_line(
    line: &Line,
    src: &str,
    rt: &Runtime,
    built: &HashMap<String, Stream<Value>>,
    graph: &mut Graph,
) -> Result<(Stream<Value>, bool), CliError> {
    let mut stages = line.stages.iter();
    let first = stages.next().expect("a line has a stage");
    let first_name = first.text(src);
    let mut flow = if let Some(stream) = built
        .get(&first.op.text)
        .filter(|_| first.positional.is_empty() && first.options.is_empty())
    {
        Flow::Local(stream.clone())
    } else {
        let op = lookup(first)?;
        match op.build {
            Build::Source(make) => {
                let args = Args::bind(op, first)?;
                let source = make(&args, rt)?;
                let stream = Stream::with_executor(rt.executor.clone()).named(first_name);
                graph.stages.push(StageStats {
                    name: first_name.to_owned(),
                    input: None,
                    output: Some(Figure::Out(stream.node_id())),
                });
                graph.feeds.push(Feed {
                    stream: stream.clone(),
                    source,
                    name: first_name.to_owned(),
                });
                Flow::Local(stream)
            }
            Build::Join(join) => {
                let args = Args::bind(op, first)?;
                let streams = named_streams(&args, built)?;
                let (base, rest) = streams.split_first().expect("`streams` is required");
                let out = join(&args, base, rest)?.named(first_name);
                graph
                    .stages
                    .push(StageStats::node(first_name, out.node_id()));
                Flow::Local(out)
            }
            _ => {
                let sources: Vec<&str> = all()
                    .filter(|o| o.role() == Role::Source)
                    .map(|o| o.name)
                    .collect();
                return Err(CliError::at(
                    format!(
                        "a line must start with a source, and `{}` is not one",
                        op.name
                    ),
                    first.op.span.clone(),
                )
                .help(format!(
                    "sources: {}; or start from a named stream",
                    sources.join(", ")
                )));
            }
        }
    };
    let mut has_sink = false;
    // `--stats`: the count into the open `scatter`, until its `gather`
    let mut scattered: Option<(String, Option<Figure>)> = None;
    for stage in stages {
        if has_sink {
            return Err(CliError::at(
                "nothing can follow a sink",
                stage.span.clone(),
            ));
        }
        let op = lookup(stage)?;
        let args = Args::bind(op, stage)?;
        let name = stage.text(src);
        let misplaced = |what: String| Err(CliError::at(what, stage.op.span.clone()));
        flow = match (op.build, flow) {
            (Build::Source(_), _) => {
                return misplaced(format!(
                    "`{}` is a source: it can only start a line",
                    op.name
                ));
            }
            (Build::Sink(sink), Flow::Local(s)) => {
                let sink = sink(&args, &s, graph)?.named(name);
                graph.stages.push(StageStats {
                    name: name.to_owned(),
                    input: Some(Figure::In(sink.node_id())),
                    output: None,
                });
                has_sink = true;
                Flow::Local(s)
            }
            (Build::Local(transform), Flow::Local(s)) => {
                let out = transform(&args, &s)?.named(name);
                graph.stages.push(StageStats::node(name, out.node_id()));
                Flow::Local(out)
            }
            (Build::Join(join), Flow::Local(s)) => {
                let rest = named_streams(&args, built)?;
                let out = join(&args, &s, &rest)?.named(name);
                graph.stages.push(StageStats::node(name, out.node_id()));
                Flow::Local(out)
            }
            (Build::Anywhere(transform), Flow::Local(s)) => {
                match transform(&args, Flow::Local(s))?.named(name) {
                    Flow::Local(out) => {
                        graph.stages.push(StageStats::node(name, out.node_id()));
                        Flow::Local(out)
                    }
                    pooled => pooled,
                }
            }
            (Build::Anywhere(transform), pooled @ Flow::Pooled(_)) => {
                transform(&args, pooled)?.named(name)
            }
            (Build::Scatter(scatter), Flow::Local(s)) => {
                scattered = Some((name.to_owned(), Some(Figure::Out(s.node_id()))));
                Flow::Pooled(scatter(&args, &s, rt)?).named(name)
            }
            (Build::Gather(gather), Flow::Pooled(s)) => {
                let out = gather(&args, s)?.named(name);
                let (first, input) = scattered.take().unwrap_or_default();
                graph.stages.push(StageStats {
                    name: format!("{first} … {name}"),
                    input,
                    output: Some(Figure::Out(out.node_id())),
                });
                Flow::Local(out)
            }
            (Build::Gather(_), Flow::Local(_)) => {
                return misplaced(format!("`{}` needs a `scatter` before it", op.name));
            }
            (_, Flow::Pooled(_)) => {
                return Err(CliError::at(
                    format!("`{}` cannot run between scatter and gather", op.name),
                    stage.op.span.clone(),
                )
                .help(format!(
                    "between scatter and gather: {}; then gather",
                    pooled_list()
                )));
            }
        };
    }
    match flow {
        Flow::Local(s) => Ok((s, has_sink)),
        Flow::Pooled(_) => Err(CliError::at(
            "a `scatter` is never gathered: add `| gather` after the pooled stages",
            line.stages.last().expect("a line has a stage").span.clone(),
        )),
    }
}

/// The streams a join names (`build` has built them all before this line).
fn named_streams(
    args: &Args<'_>,
    built: &HashMap<String, Stream<Value>>,
) -> Result<Vec<Stream<Value>>, CliError> {
    args.names("streams")
        .into_iter()
        .map(|n| {
            let names = built.keys().map(|k| (k.clone(), 0)).collect();
            built
                .get(&n.text)
                .cloned()
                .ok_or_else(|| unknown_stream(n, &names))
        })
        .collect()
}
