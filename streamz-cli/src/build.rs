//! Building a streamz graph from a parsed pipeline.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use streamz_core::{GraphNode, Stream};

use crate::error::{CliError, nearest};
use crate::flow::Flow;
use crate::graph::{Feed, Figure, Graph, Runtime, StageStats};
use crate::lex::Word;
use crate::ops::{Args, Build, Role, all, find, lookup, pooled_list, stdout_sink};
use crate::parse::{Line, Program};

/// Builds the graph of `program`.
pub(crate) fn build(program: &Program, src: &str, rt: &Runtime) -> Result<Graph, CliError> {
    let mut graph = Graph {
        feeds: Vec::new(),
        counts: Vec::new(),
        stages: Vec::new(),
        stdout_closed: Arc::default(),
        file_sinks: false,
        resuming: rt.resuming,
    };
    // Names first, so lines may refer to streams defined further down.
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, line) in program.lines.iter().enumerate() {
        for name in line.name.iter().chain(side_names(line)) {
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
    let mut sides_built: Vec<(&Word, Stream<Value>)> = Vec::new();
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
                let (tail, has_sink, sides) = build_line(line, src, rt, &built, &mut graph)?;
                if let Some(name) = &line.name {
                    built.insert(name.text.clone(), tail.clone());
                }
                tails.push((i, tail, has_sink));
                for (name, side) in sides {
                    built.insert(name.text.clone(), side.clone());
                    sides_built.push((name, side));
                }
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
    // a side stream no line uses is printed too
    for (name, side) in sides_built {
        if !consumed.contains_key(&name.text) {
            stdout_sink(&side, &graph.stdout_closed);
        }
    }
    Ok(graph)
}

/// The streams a line's stages name by an option (`window … late=NAME`).
fn side_names(line: &Line) -> impl Iterator<Item = &Word> {
    line.stages.iter().filter_map(|stage| {
        let Build::Split(option, _) = find(&stage.op.text)?.build else {
            return None;
        };
        stage
            .options
            .iter()
            .find(|(key, _)| key.text == option)
            .map(|(_, value)| value)
    })
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

/// A line built: its last stream, whether it ended in a sink, and the side streams its
/// stages named (`window … late=NAME`).
type BuiltLine<'l> = (Stream<Value>, bool, Vec<(&'l Word, Stream<Value>)>);

/// Builds one line.
fn build_line<'l>(
    line: &'l Line,
    src: &str,
    rt: &Runtime,
    built: &HashMap<String, Stream<Value>>,
    graph: &mut Graph,
) -> Result<BuiltLine<'l>, CliError> {
    let mut sides = Vec::new();
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
            (Build::Split(option, split), Flow::Local(s)) => {
                let (out, side) = split(&args, &s)?;
                let out = out.named(name);
                graph.stages.push(StageStats::node(name, out.node_id()));
                match stage.options.iter().find(|(key, _)| key.text == option) {
                    Some((_, side_name)) => {
                        let side = side.named(&side_name.text);
                        graph
                            .stages
                            .push(StageStats::node(&side_name.text, side.node_id()));
                        sides.push((side_name, side));
                    }
                    // unnamed, the side stream has no downstream: what it would get is an
                    // error of the element, in the error stream
                    None => drop(side),
                }
                Flow::Local(out)
            }
            (Build::Join(join), Flow::Local(s)) => {
                let rest = named_streams(&args, built)?;
                let out = join(&args, &s, &rest)?.named(name);
                graph.stages.push(StageStats::node(name, out.node_id()));
                Flow::Local(out)
            }
            (Build::Anywhere(transform), flow) => {
                let out = transform(&args, flow)?.named(name);
                // a local stage is a row of its own; a pooled one counts in `scatter … gather`
                if let Flow::Local(s) = &out {
                    graph.stages.push(StageStats::node(name, s.node_id()));
                }
                out
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
        Flow::Local(s) => Ok((s, has_sink, sides)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Kind, OpSpec, Param};
    use crate::parse::parse;

    /// A value of `kind` that the operator accepts (`every`: with all its parameters given).
    fn sample(op: &OpSpec, p: &Param, dir: &std::path::Path, every: bool) -> String {
        match (op.name, p.name, p.kind) {
            // with a slide, the window slides
            ("window", "shape", _) if every => "sliding".into(),
            ("window", "shape", _) => "tumbling".into(),
            ("values", "values", _) => "'[1, 2]'".into(),
            ("pluck", "key", _) => "0".into(),
            ("from_textfile" | "sink_to_textfile", "path", _) => {
                format!("'{}'", dir.join(format!("{}.txt", op.name)).display())
            }
            ("filenames", "glob", _) => format!("'{}/*'", dir.display()),
            ("from_process", "command", _) => "'echo hi'".into(),
            ("from_http_server", "path", _) => "/in".into(),
            (_, "config", Kind::Text) => "client.id=every_entry_builds".into(),
            // nothing listens there: see `CONNECTS` in `every_entry_builds`
            ("to_kafka", "brokers", _) => "127.0.0.1:1".into(),
            ("to_mqtt", "port", _) => "1".into(),
            ("from_mqtt" | "to_mqtt", "qos", _) => "1".into(),
            // no TLS: a file that is not there is its own error
            ("from_mqtt" | "to_mqtt", "ca", _) => "''".into(),
            ("to_kafka" | "to_mqtt" | "to_nats", "connect_timeout", _) => "200ms".into(),
            ("to_nats", "server", _) => "nats://127.0.0.1:1".into(),
            // a port of this machine, any free one
            ("from_websocket" | "to_websocket", "address", _) => "0".into(),
            ("to_websocket", "slow", _) => "wait".into(),
            ("window", "late", _) => "too_late".into(),
            ("watermarks" | "window", "unit", _) => "ms".into(),
            ("from_nats" | "to_nats", "stream", _) => "S".into(),
            // a queue group is for core NATS, the rest need files or secrets
            ("from_nats" | "to_nats", "queue" | "creds" | "tlsca" | "token", _) => "''".into(),
            (_, _, Kind::Expr) => "x".into(),
            (_, _, Kind::AccExpr) => "acc".into(),
            (_, _, Kind::Count) => "2".into(),
            (_, _, Kind::Int) => "3".into(),
            (_, _, Kind::Bool) => "true".into(),
            (_, _, Kind::Duration) => "10ms".into(),
            (_, _, Kind::Json) => "1".into(),
            // a text's own default is one it takes
            (_, _, Kind::Text) => p
                .default
                .filter(|d| !d.is_empty())
                .unwrap_or("stdout")
                .into(),
            (_, _, Kind::Port) => "0".into(),
            (_, _, Kind::Names) => "a".into(),
        }
    }

    /// Every entry builds: with its required parameters, and with every parameter given,
    /// where its role puts it (and between scatter and gather, when it may run there).
    #[test]
    fn every_entry_builds() {
        let dir = std::env::temp_dir().join(format!("streamz-ops-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for op in all() {
            for every in [false, true] {
                let mut words = vec![op.name.to_owned()];
                for p in op.params.iter().filter(|p| every || p.default.is_none()) {
                    let v = sample(op, p, &dir, every);
                    if p.kind == Kind::Names {
                        words.push(v);
                    } else {
                        words.push(format!("{}={v}", p.name));
                    }
                }
                let stage = words.join(" ");
                if matches!(op.build, Build::Scatter(_)) {
                    if cfg!(feature = "rayon") {
                        let program = format!("range 3 | {stage} | map x | gather | count");
                        let graph = parse(&program)
                            .and_then(|p| build(&p, &program, &Runtime::for_tests()))
                            .unwrap_or_else(|e| panic!("`{program}`: {}", e.message));
                        assert!(!graph.feeds.is_empty());
                    }
                    continue;
                }
                let mut programs = match op.role() {
                    Role::Source => vec![format!("{stage} | sink null")],
                    Role::Transform => vec![format!("a = range 2; range 3 | {stage} | count")],
                    Role::Pooled => vec![format!("range 3 | scatter | {stage} | count")],
                    Role::Sink => vec![format!("range 3 | {stage}")],
                };
                if op.role() == Role::Pooled && !cfg!(feature = "rayon") {
                    continue;
                }
                // on the pool with its required parameters (some options are local only)
                if cfg!(feature = "rayon")
                    && !every
                    && op.role() == Role::Transform
                    && op.runs_pooled()
                {
                    programs.push(format!("range 3 | scatter | {stage} | gather | count"));
                }
                if matches!(op.build, Build::Join(_)) {
                    programs.push(format!("a = range 2; b = range 2; {op} a b", op = op.name));
                }
                // sinks that connect when the pipeline is built: here, to nothing at
                // 127.0.0.1:1, which they say (their tests build them against real brokers)
                const CONNECTS: &[(&str, &str)] = &[
                    ("to_kafka", "brokers=127.0.0.1:1"),
                    ("to_mqtt", "port=1"),
                    ("to_nats", "server=nats://127.0.0.1:1"),
                ];
                if let Some((_, nowhere)) = CONNECTS.iter().find(|(name, _)| *name == op.name) {
                    let program = if every {
                        format!("range 3 | {stage}")
                    } else {
                        format!("range 3 | {stage} {nowhere} connect_timeout=200ms")
                    };
                    let e = parse(&program)
                        .and_then(|p| build(&p, &program, &Runtime::for_tests()))
                        .unwrap_err();
                    assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
                    continue;
                }
                for program in programs {
                    let graph = parse(&program)
                        .and_then(|p| build(&p, &program, &Runtime::for_tests()))
                        .unwrap_or_else(|e| panic!("`{program}`: {}", e.message));
                    assert!(!graph.feeds.is_empty(), "`{program}`");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An option the pooled form does not have is refused, not ignored.
    #[cfg(feature = "rayon")]
    #[test]
    fn a_local_only_option_on_the_pool_is_refused() {
        let src = "range 3 | scatter | accumulate 'acc + x' returns_state=true | gather";
        let err = parse(src)
            .and_then(|p| build(&p, src, &Runtime::for_tests()))
            .unwrap_err();
        assert!(
            err.message
                .contains("cannot run between scatter and gather"),
            "{err:?}"
        );
    }
}
