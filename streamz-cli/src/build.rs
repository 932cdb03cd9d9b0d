//! Building a streamz graph from a parsed pipeline.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use streamz_core::{Executor, Stream};

use crate::error::{CliError, nearest};
use crate::lex::Word;
use crate::ops::{Args, OPS, OpSpec, Role, lookup};
use crate::parse::{Line, Program, Stage};
use crate::script::Expr;

/// Where the graph's elements come from: each runs as a task until it ends or is stopped.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Range {
        start: i64,
        end: i64,
        step: i64,
    },
    Values(Vec<Value>),
    Stdin {
        json: bool,
        max_line: usize,
    },
    TextFile {
        path: String,
        from_end: bool,
        follow: bool,
        poll: Duration,
        json: bool,
        max_line: usize,
    },
    Filenames {
        glob: String,
        follow: bool,
        poll: Duration,
    },
    Tcp {
        host: String,
        port: u16,
        max_line: usize,
        max_connections: usize,
        json: bool,
    },
    Http {
        host: String,
        port: u16,
        path: String,
        json: bool,
        limits: crate::net::HttpLimits,
    },
    Process {
        command: String,
        json: bool,
        max_line: usize,
    },
    Periodic {
        expr: Expr,
        interval: Duration,
        limit: Option<usize>,
    },
}

impl Source {
    /// How many elements it will emit, when that is known in advance.
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Source::Range { start, end, step } => {
                let (start, end, step) = (i128::from(*start), i128::from(*end), i128::from(*step));
                let span = if step > 0 { end - start } else { start - end };
                Some(if span <= 0 {
                    0
                } else {
                    (span as u128).div_ceil(step.unsigned_abs()) as u64
                })
            }
            Source::Values(v) => Some(v.len() as u64),
            Source::Periodic { limit, .. } => limit.map(|l| l as u64),
            _ => None,
        }
    }
}

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
    /// `count` sinks: (stage name, counter), printed at the end.
    pub(crate) counts: Vec<Arc<AtomicU64>>,
    /// Per stage, what went in and out, for `--stats`.
    pub(crate) stages: Vec<StageStats>,
    /// Set when stdout is gone (a closed pipe): the sources stop.
    pub(crate) stdout_closed: Arc<std::sync::atomic::AtomicBool>,
    /// Whether a sink writes somewhere other than stdout (a file), so a closed stdout still
    /// leaves something to drain into.
    pub(crate) file_sinks: bool,
}

/// The elements into and out of one stage, for `--stats`: sources have no input, sinks no
/// output, and the stages between `scatter` and `gather` count as one.
#[derive(Debug, Clone)]
pub(crate) struct StageStats {
    pub(crate) name: String,
    pub(crate) input: Option<Arc<AtomicU64>>,
    pub(crate) output: Option<Arc<AtomicU64>>,
}

/// What the graph runs on.
pub(crate) struct Runtime {
    pub(crate) executor: Arc<dyn Executor>,
    #[cfg(feature = "rayon")]
    pub(crate) pool: Option<streamz_rayon::Pool>,
    pub(crate) stats: bool,
    pub(crate) json_input: bool,
}

/// A stream being built: local, or between `scatter` and `gather`.
enum Flow {
    Local(Stream<Value>),
    #[cfg(feature = "rayon")]
    Pooled(streamz_rayon::Scattered<Value>),
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
            if OPS.iter().any(|op| op.name == name.text) {
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
        if matches!(op, "union" | "zip" | "combine_latest" | "zip_latest") {
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
    let mut flow = if let Some(stream) = built
        .get(&first.op.text)
        .filter(|_| first.positional.is_empty() && first.options.is_empty())
    {
        Flow::Local(stream.clone())
    } else {
        let op = lookup(first)?;
        match op.role {
            Role::Source => {
                let args = Args::bind(op, first)?;
                let source = source(&args, rt)?;
                let stream = Stream::with_executor(rt.executor.clone()).named(first.text(src));
                graph.feeds.push(Feed {
                    stream: stream.clone(),
                    source,
                    name: first.text(src).to_owned(),
                });
                Flow::Local(metered(None, stream, first.text(src), rt, graph))
            }
            _ if matches!(op.name, "union" | "zip" | "combine_latest" | "zip_latest") => {
                let args = Args::bind(op, first)?;
                let streams = named_streams(&args, built)?;
                let (base, rest) = streams.split_first().expect("`streams` is required");
                let out = join(op, &args, base, rest)?.named(first.text(src));
                Flow::Local(metered(None, out, first.text(src), rt, graph))
            }
            _ => {
                return Err(CliError::at(
                    format!(
                        "a line must start with a source, and `{}` is not one",
                        op.name
                    ),
                    first.op.span.clone(),
                )
                .help(format!(
                    "sources: {}; or start from a named stream",
                    OPS.iter()
                        .filter(|o| o.role == Role::Source)
                        .map(|o| o.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    };
    let mut has_sink = false;
    // `--stats`: the count into a `scatter`, until its `gather`
    #[cfg(feature = "rayon")]
    let mut scattered: Option<(String, Option<Arc<AtomicU64>>)> = None;
    for stage in stages {
        if has_sink {
            return Err(CliError::at(
                "nothing can follow a sink",
                stage.span.clone(),
            ));
        }
        let op = lookup(stage)?;
        let args = Args::bind(op, stage)?;
        let name = stage.text(src).to_owned();
        flow = match (op.role, flow) {
            (Role::Source, _) => {
                return Err(CliError::at(
                    format!("`{}` is a source: it can only start a line", op.name),
                    stage.op.span.clone(),
                ));
            }
            (Role::Sink, Flow::Local(s)) => {
                let (input, s) = counter(&s, rt);
                sink(op, &args, &s, graph)?;
                if rt.stats {
                    graph.stages.push(StageStats {
                        name,
                        input,
                        output: None,
                    });
                }
                has_sink = true;
                Flow::Local(s)
            }
            (Role::Transform, Flow::Local(s)) if op.name == "scatter" => {
                let (input, s) = counter(&s, rt);
                #[cfg(feature = "rayon")]
                {
                    scattered = Some((name, input));
                }
                #[cfg(not(feature = "rayon"))]
                drop(input); // `scatter` refuses without a pool
                scatter(&s, rt, stage)?
            }
            (Role::Transform, Flow::Local(s)) => {
                let (input, s) = counter(&s, rt);
                let out = transform(op, &args, &s, built)?.named(&name);
                Flow::Local(metered(input, out, &name, rt, graph))
            }
            #[cfg(feature = "rayon")]
            (_, Flow::Pooled(s)) => match pooled(op, &args, &s, &name)? {
                Flow::Local(out) => {
                    let (first, input) = scattered.take().unwrap_or_default();
                    let name = format!("{first} … {name}");
                    Flow::Local(metered(input, out, &name, rt, graph))
                }
                pooled => pooled,
            },
            (Role::Pooled, Flow::Local(_)) => {
                return Err(CliError::at(
                    format!("`{}` needs a `scatter` before it", op.name),
                    stage.op.span.clone(),
                ));
            }
        };
    }
    match flow {
        Flow::Local(s) => Ok((s, has_sink)),
        #[cfg(feature = "rayon")]
        Flow::Pooled(_) => Err(CliError::at(
            "a `scatter` is never gathered: add `| gather` after the pooled stages",
            line.stages.last().expect("a line has a stage").span.clone(),
        )),
    }
}

/// With `--stats`, counts the elements that pass `s`: the counter, and the stream to use
/// instead of `s`.
fn counter(s: &Stream<Value>, rt: &Runtime) -> (Option<Arc<AtomicU64>>, Stream<Value>) {
    if !rt.stats {
        return (None, s.clone());
    }
    let n = Arc::new(AtomicU64::new(0));
    let counted = {
        let n = n.clone();
        s.map(move |x| {
            n.fetch_add(1, Ordering::Relaxed);
            x
        })
        .named("stats")
    };
    (Some(n), counted)
}

/// With `--stats`, counts what comes out of the stage `name` and records its row.
fn metered(
    input: Option<Arc<AtomicU64>>,
    out: Stream<Value>,
    name: &str,
    rt: &Runtime,
    graph: &mut Graph,
) -> Stream<Value> {
    let (output, out) = counter(&out, rt);
    if rt.stats {
        graph.stages.push(StageStats {
            name: name.to_owned(),
            input,
            output,
        });
    }
    out
}

fn positive(args: &Args<'_>, name: &str, value: usize) -> Result<usize, CliError> {
    if value == 0 {
        let stage = args.stage();
        let word = stage
            .positional
            .iter()
            .chain(stage.options.iter().map(|(_, v)| v))
            .find(|w| w.text == "0");
        let span = word.map_or(stage.span.clone(), |w| w.span.clone());
        return Err(CliError::at(format!("{name} must be at least 1"), span));
    }
    Ok(value)
}

/// `from_http_server`'s path: refused when the pipeline is read, not when the server starts.
fn http_path(args: &Args<'_>) -> Result<String, CliError> {
    let path = args.text("path").unwrap_or_else(|| "/".into());
    let fine = path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()+,;=@".contains(c));
    if fine {
        return Ok(path);
    }
    let span = args
        .stage()
        .options
        .iter()
        .find(|(k, _)| k.text == "path")
        .map_or(args.stage().span.clone(), |(_, v)| v.span.clone());
    Err(
        CliError::at(format!("path `{path}` is not a plain URL path"), span).help(
            "it starts with `/` and has no wildcards or captures (`*`, `:`, `{}`): path=/ingest",
        ),
    )
}

/// The line cap of `stdin`, `from_textfile` and `from_process`.
fn max_line(args: &Args<'_>) -> Result<usize, CliError> {
    positive(args, "max_line", args.count("max_line")?.unwrap_or(1 << 20))
}

fn source(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let op = args.stage().op.text.as_str();
    let json =
        |args: &Args<'_>| -> Result<bool, CliError> { Ok(args.flag("json")? || rt.json_input) };
    Ok(match op {
        "range" => {
            let a = args.int("start")?.unwrap_or(0);
            let (start, end) = match args.int("end")? {
                Some(end) => (a, end),
                None => (0, a),
            };
            let step = args.int("step")?.unwrap_or(1);
            if step == 0 {
                return Err(CliError::at("step cannot be 0", args.stage().span.clone()));
            }
            Source::Range { start, end, step }
        }
        "values" => match args.strict_json("values")? {
            Some(Value::Array(items)) => Source::Values(items),
            _ => {
                return Err(CliError::at(
                    "values takes a JSON array, such as '[1, 2, 3]'",
                    args.stage().span.clone(),
                ));
            }
        },
        "stdin" => Source::Stdin {
            json: json(args)?,
            max_line: max_line(args)?,
        },
        "from_textfile" => Source::TextFile {
            path: args.text("path").unwrap_or_default(),
            from_end: args.flag("from_end")?,
            follow: args.flag("follow")?,
            poll: args
                .interval("poll_interval")?
                .unwrap_or(Duration::from_millis(100)),
            json: json(args)?,
            max_line: max_line(args)?,
        },
        "filenames" => Source::Filenames {
            glob: args.text("glob").unwrap_or_default(),
            follow: args.flag("follow")?,
            poll: args
                .interval("poll_interval")?
                .unwrap_or(Duration::from_secs(1)),
        },
        "from_tcp" => Source::Tcp {
            host: args.text("host").unwrap_or_default(),
            port: args.port("port")?.unwrap_or(0),
            max_line: positive(args, "max_line", args.count("max_line")?.unwrap_or(65536))?,
            max_connections: positive(
                args,
                "max_connections",
                args.count("max_connections")?.unwrap_or(512),
            )?,
            json: json(args)?,
        },
        "from_http_server" => Source::Http {
            host: args.text("host").unwrap_or_default(),
            port: args.port("port")?.unwrap_or(0),
            path: http_path(args)?,
            json: json(args)?,
            limits: crate::net::HttpLimits {
                max_body: args.count_within("max_body", 1, 1 << 30)?,
                max_requests: args.count_within("max_requests", 1, 1 << 16)?,
                max_connections: args.count_within("max_connections", 1, 1 << 20)?,
                header_timeout: args
                    .interval("header_timeout")?
                    .unwrap_or(Duration::from_secs(10)),
                body_timeout: args
                    .interval("body_timeout")?
                    .unwrap_or(Duration::from_secs(30)),
                grace: args.duration("grace")?.unwrap_or(Duration::from_secs(5)),
            },
        },
        "from_process" => Source::Process {
            command: args.text("command").unwrap_or_default(),
            json: json(args)?,
            max_line: max_line(args)?,
        },
        "from_periodic" => Source::Periodic {
            expr: args.expr("expr", &["x"])?.expect("required"),
            interval: args.interval("interval")?.unwrap_or(Duration::from_secs(1)),
            limit: args.count("limit")?,
        },
        other => unreachable!("`{other}` is in the table as a source"),
    })
}

/// Compact JSON for messages, cut short when long.
pub(crate) fn show(x: &Value) -> String {
    let mut s = x.to_string();
    if s.chars().count() > 120 {
        s = s.chars().take(117).collect::<String>() + "…";
    }
    s
}

/// An expression failure as the error of one element.
fn failure(x: &Value, e: String) -> String {
    format!("on the element {}: {e}", show(x))
}

/// A key for hashing a JSON value.
fn key_of(x: &Value) -> String {
    x.to_string()
}

/// Evaluates a key expression where the operator cannot take an error: a failure becomes a
/// panic, which the node turns into an error for the element (and the CLI's panic hook
/// keeps quiet).
fn key_fn(expr: Expr) -> impl Fn(&Value) -> String + Send + Sync + 'static {
    move |x: &Value| match expr.eval(&[x]) {
        Ok(k) => key_of(&k),
        Err(e) => std::panic::panic_any(crate::quiet_panic(failure(x, e))),
    }
}

fn transform(
    op: &'static OpSpec,
    args: &Args<'_>,
    s: &Stream<Value>,
    built: &HashMap<String, Stream<Value>>,
) -> Result<Stream<Value>, CliError> {
    Ok(match op.name {
        "map" => {
            let f = args.expr("func", &["x"])?.expect("required");
            s.try_map(move |x: Value| f.eval(&[&x]).map_err(|e| failure(&x, e)))
        }
        "filter" | "remove" => {
            let f = args.expr("predicate", &["x"])?.expect("required");
            let keep = op.name == "filter";
            s.try_filter(move |x: &Value| {
                f.test(&[x]).map(|t| t == keep).map_err(|e| failure(x, e))
            })
        }
        "accumulate" => {
            let f = args.expr("func", &["acc", "x"])?.expect("required");
            let start = args.strict_json("start")?;
            let returns_state = args.flag("returns_state")?;
            let with_state = args.flag("with_state")?;
            s.try_accumulate_returns_state(start, move |acc: &Value, x: Value| {
                let out = f.eval(&[acc, &x]).map_err(|e| failure(&x, e))?;
                let (state, y) = if returns_state {
                    match out {
                        Value::Array(mut pair) if pair.len() == 2 => {
                            let y = pair.pop().expect("two items");
                            (pair.pop().expect("two items"), y)
                        }
                        other => {
                            return Err(failure(
                                &x,
                                format!("with returns_state=true the expression must give [state, output], not {}", show(&other)),
                            ));
                        }
                    }
                } else {
                    (out.clone(), out)
                };
                let y = if with_state { Value::Array(vec![state.clone(), y]) } else { y };
                Ok::<_, String>((state, y))
            })
        }
        "sliding_window" => {
            let n = positive(args, "n", args.count("n")?.expect("required"))?;
            s.sliding_window(n, flag_or(args, "return_partial", true)?)
                .map(Value::Array)
        }
        "partition" => {
            let n = positive(args, "n", args.count("n")?.expect("required"))?;
            let key = args.expr("key", &["x"])?;
            let out = match (args.duration("timeout")?, key) {
                (None, None) => s.partition(n),
                (None, Some(key)) => s.partition_by(n, key_fn(key)),
                (Some(t), None) => s.partition_timeout(n, t),
                (Some(t), Some(key)) => s.partition_by_timeout(n, t, key_fn(key)),
            };
            out.map(Value::Array)
        }
        "unique" => {
            let maxsize = match args.count("maxsize")? {
                Some(m) => Some(positive(args, "maxsize", m)?),
                None => None,
            };
            match args.expr("key", &["x"])? {
                Some(key) => s.unique_by(maxsize, key_fn(key)),
                None => s.unique_by(maxsize, key_of),
            }
        }
        "slice" => {
            let step = positive(args, "step", args.count("step")?.unwrap_or(1))?;
            s.slice(args.count("start")?.unwrap_or(0), args.count("stop")?, step)
        }
        "pluck" => {
            let key = args.json("key").expect("required");
            s.try_map(move |x: Value| {
                let found = match (&key, &x) {
                    (Value::Number(n), Value::Array(items)) => {
                        n.as_u64().and_then(|i| items.get(i as usize))
                    }
                    (Value::String(k), Value::Object(fields)) => fields.get(k),
                    _ => None,
                };
                found
                    .cloned()
                    .ok_or_else(|| failure(&x, format!("it has no {key}")))
            })
        }
        "flatten" => s
            .try_map(|x: Value| match x {
                Value::Array(items) => Ok(items),
                other => Err(failure(&other, "flatten needs arrays".into())),
            })
            .flatten(),
        "json" => s.try_map(|x: Value| match x {
            Value::String(text) => serde_json::from_str(&text)
                .map_err(|e| failure(&Value::String(text.clone()), format!("not JSON: {e}"))),
            other => Ok(other),
        }),
        "frequencies" => s.map(|x: Value| key_of(&x)).frequencies().map(|counts| {
            let mut keys: Vec<_> = counts.into_iter().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|(k, n)| (k, Value::from(n))).collect())
        }),
        "rate_limit" => s.rate_limit(args.duration("interval")?.expect("required")),
        "delay" => s.delay(args.duration("interval")?.expect("required")),
        "timed_window" => s
            .timed_window(args.interval("interval")?.expect("required"))
            .map(Value::Array),
        "buffer" => s.buffer(positive(args, "n", args.count("n")?.expect("required"))?),
        "latest" => s.latest(),
        "union" | "zip" | "combine_latest" | "zip_latest" => {
            let rest = named_streams(args, built)?;
            join(op, args, s, &rest)?
        }
        other => unreachable!("`{other}` is in the table as a transform"),
    })
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

fn flag_or(args: &Args<'_>, name: &str, default: bool) -> Result<bool, CliError> {
    match args.text(name) {
        Some(_) => args.flag(name),
        None => Ok(default),
    }
}

fn join(
    op: &'static OpSpec,
    args: &Args<'_>,
    base: &Stream<Value>,
    rest: &[Stream<Value>],
) -> Result<Stream<Value>, CliError> {
    let all: Vec<&Stream<Value>> = std::iter::once(base).chain(rest).collect();
    Ok(match op.name {
        "union" => base.union(rest),
        "zip" => {
            let maxsize = positive(args, "maxsize", args.count("maxsize")?.unwrap_or(10))?;
            Stream::zip_all(all.iter().map(|s| (*s).into()), maxsize).map(Value::Array)
        }
        "combine_latest" => Stream::combine_latest_all(&all, None).map(Value::Array),
        "zip_latest" => Stream::zip_latest_all(base, &all[1..]).map(Value::Array),
        other => unreachable!("`{other}` is not a join"),
    })
}

#[cfg(feature = "rayon")]
fn scatter(s: &Stream<Value>, rt: &Runtime, stage: &Stage) -> Result<Flow, CliError> {
    use streamz_rayon::ScatterExt;
    match &rt.pool {
        Some(pool) => Ok(Flow::Pooled(s.scatter(pool))),
        None => Err(CliError::at(
            "scatter needs a thread pool",
            stage.span.clone(),
        )),
    }
}

#[cfg(not(feature = "rayon"))]
fn scatter(_: &Stream<Value>, _: &Runtime, stage: &Stage) -> Result<Flow, CliError> {
    Err(CliError::at(
        "scatter needs the thread pool, and this streamz was built without the `rayon` feature",
        stage.span.clone(),
    )
    .help("build it with `cargo install streamz-cli --features rayon`"))
}

#[cfg(feature = "rayon")]
fn pooled(
    op: &'static OpSpec,
    args: &Args<'_>,
    s: &streamz_rayon::Scattered<Value>,
    name: &str,
) -> Result<Flow, CliError> {
    let stage = args.stage();
    Ok(match op.name {
        "map" => {
            let f = args.expr("func", &["x"])?.expect("required");
            Flow::Pooled(
                s.try_map(move |x: Value| f.eval(&[&x]).map_err(|e| failure(&x, e)))
                    .named(name),
            )
        }
        "filter" | "remove" => {
            let f = args.expr("predicate", &["x"])?.expect("required");
            let keep = op.name == "filter";
            Flow::Pooled(
                s.filter(move |x: &Value| match f.test(&[x]) {
                    Ok(t) => t == keep,
                    Err(e) => std::panic::panic_any(crate::quiet_panic(failure(x, e))),
                })
                .named(name),
            )
        }
        "accumulate" => {
            let f = args.expr("func", &["acc", "x"])?.expect("required");
            let step = move |acc: &Value, x: Value| match f.eval(&[acc, &x]) {
                Ok(v) => v,
                Err(e) => std::panic::panic_any(crate::quiet_panic(failure(&x, e))),
            };
            Flow::Pooled(
                match args.strict_json("start")? {
                    Some(start) => s.accumulate_from(start, step),
                    None => s.accumulate(step),
                }
                .named(name),
            )
        }
        "flatten" => Flow::Pooled(
            s.try_map(|x: Value| match x {
                Value::Array(items) => Ok(items),
                other => Err(failure(&other, "flatten needs arrays".into())),
            })
            .flatten()
            .named(name),
        ),
        "buffer" => {
            Flow::Pooled(s.buffer(positive(args, "n", args.count("n")?.expect("required"))?))
        }
        "rate_limit" => Flow::Pooled(s.rate_limit(args.duration("interval")?.expect("required"))),
        "delay" => Flow::Pooled(s.delay(args.duration("interval")?.expect("required"))),
        "gather" => Flow::Local(if flag_or(args, "ordered", true)? {
            s.gather()
        } else {
            s.gather_unordered()
        }),
        other => {
            return Err(CliError::at(
                format!("`{other}` cannot run between scatter and gather"),
                stage.op.span.clone(),
            )
            .help("between scatter and gather: map, filter, remove, accumulate, flatten, buffer, rate_limit, delay; then gather"));
        }
    })
}

fn sink(
    op: &'static OpSpec,
    args: &Args<'_>,
    s: &Stream<Value>,
    graph: &mut Graph,
) -> Result<(), CliError> {
    match op.name {
        "sink" => match args.text("to").as_deref() {
            Some("stdout") | None => stdout_sink(s, &graph.stdout_closed),
            Some("null") => {
                s.sink(|_| {});
            }
            Some(other) => {
                return Err(CliError::at(
                    format!("`sink {other}`: sink takes `stdout` or `null`"),
                    args.stage().span.clone(),
                )
                .help("to write to a file, use `sink_to_textfile PATH`"));
            }
        },
        "sink_to_textfile" => {
            let path = args.text("path").unwrap_or_default();
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(args.flag("append")?)
                .truncate(!args.flag("append")?)
                .open(&path)
                .map_err(|e| {
                    CliError::at(
                        format!("cannot open `{path}` for writing: {e}"),
                        args.stage().span.clone(),
                    )
                })?;
            graph.file_sinks = true;
            let file = Mutex::new(std::io::LineWriter::new(file));
            s.try_sink(move |x: Value| {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                writeln!(file, "{x}")
            });
        }
        "count" => {
            let n = Arc::new(AtomicU64::new(0));
            graph.counts.push(n.clone());
            s.sink(move |_| {
                n.fetch_add(1, Ordering::Relaxed);
            });
        }
        other => unreachable!("`{other}` is in the table as a sink"),
    }
    Ok(())
}

fn stdout_sink(s: &Stream<Value>, closed: &Arc<std::sync::atomic::AtomicBool>) {
    let closed = closed.clone();
    s.sink(move |x: Value| {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{x}").and_then(|()| out.flush()).is_err() {
            // a closed pipe (`| head`): stop quietly
            closed.store(true, Ordering::Relaxed);
        }
    });
}
