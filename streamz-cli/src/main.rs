//! `streamz`: run and draw stream pipelines from the shell.
//!
//! ```text
//! streamz run 'range 10 | map "x + 1" | rate_limit 500ms | sink stdout'
//! streamz graph 'range 10 | sliding_window 2' | dot -Tsvg > graph.svg
//! streamz ops
//! ```

mod build;
mod checkpoint;
mod error;
mod flow;
#[cfg(test)]
mod fuzz;
mod graph;
mod lex;
mod lines;
mod net;
mod ops;
mod parse;
mod run;
mod script;
mod source;
mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use streamz_core::Executor;

use crate::error::CliError;
use crate::run::OnError;

/// Run and draw stream pipelines: stages joined by `|`, as in Python's streamz.
///
/// A pipeline is a source, operators and a sink: `range 10 | map "x + 1" | sink stdout`.
/// Functions are rhai expressions over the element `x`; elements are JSON values. `streamz ops`
/// lists every operator.
#[derive(Debug, Parser)]
#[command(
    name = "streamz",
    version,
    max_term_width = 100,
    after_help = "Examples:\n  \
        streamz run 'range 10 | map \"x + 1\" | rate_limit 500ms | sink stdout'\n  \
        streamz run 'a = range 3; b = values [\"x\", \"y\", \"z\"]; zip a b'\n  \
        streamz graph --format svg -o graph.svg 'range 5 | sliding_window 2'\n\n\
        The language, with more examples: docs/cli.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline until its sources end, or until SIGINT (Ctrl-C) or SIGTERM, which close
    /// the sources so that windows flush and nothing accepted is lost; a second signal stops
    /// at once, saying how many accepted elements it abandoned.
    #[command(after_help = "Examples:\n  \
        streamz run 'range 10 | map \"x + 1\" | rate_limit 500ms | sink stdout'\n  \
        streamz run 'range 7 | partition 3'\n  \
        seq 5 | streamz run --json 'stdin | accumulate \"acc + x\" start=0'\n  \
        streamz run -f pipeline.sz")]
    Run(RunArgs),
    /// Print a pipeline's graph: Graphviz DOT, or SVG/PNG through Graphviz's `dot`.
    Graph(GraphArgs),
    /// List every operator with its parameters.
    Ops,
}

#[derive(Debug, ClapArgs)]
struct Pipeline {
    /// The pipeline text (or use -f).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pipeline: Option<String>,
    /// Read the pipeline from a file: one `name = stages` line per stream.
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
struct RunArgs {
    #[command(flatten)]
    pipeline: Pipeline,
    /// The runtime that drives the graph.
    #[arg(long, value_enum, default_value_t = ExecutorChoice::Tokio)]
    executor: ExecutorChoice,
    /// Parse input lines (stdin, files, sockets, processes) as JSON.
    #[arg(long)]
    json: bool,
    /// What to do with a bad input line or a failed element.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    on_error: OnError,
    /// Print progress on stderr every second, and a summary at the end.
    #[arg(long)]
    stats: bool,
    /// After SIGINT or SIGTERM, how long the drain may take (e.g. `20s`) before the run stops
    /// anyway, as a second signal would: exit 130 or 143, with the count abandoned. Default:
    /// no limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    drain_timeout: Option<std::time::Duration>,
    /// Threads of the pool that runs `scatter`ed stages (0: one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Serve a live dashboard of the running graph: http://ADDR/status, /metrics
    /// (Prometheus), /api/graph (JSON). `--dashboard` alone serves on 127.0.0.1:8787;
    /// `--dashboard=ADDR` on ADDR.
    // The address needs `=`, so that `--dashboard 'PIPELINE'` reads PIPELINE as the pipeline.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "127.0.0.1:8787"
    )]
    dashboard: Option<String>,
    /// Keep the pipeline's state (accumulations, windows, partitions, unique's memory) and
    /// its sources' positions in FILE, saved every --checkpoint-every and at the end; a run
    /// killed and started again with the same pipeline and FILE resumes from the last
    /// checkpoint. The sources must be able to resume: from_textfile, range, values,
    /// from_periodic.
    /// FILE may also be a Redis server, `redis://HOST:PORT[/DB]`, the state kept under
    /// --checkpoint-key.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The key of the checkpoints in a Redis server (with --checkpoint redis://…).
    #[arg(
        long,
        value_name = "KEY",
        default_value = "streamz:checkpoint",
        requires = "checkpoint"
    )]
    checkpoint_key: String,
    /// How often to checkpoint (with --checkpoint).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s", requires = "checkpoint")]
    checkpoint_every: std::time::Duration,
    /// Start the stage KEY afresh, ignoring its state in the checkpoint: for a pipeline that
    /// changed (the error of a checkpoint that does not fit names each KEY). Repeatable.
    #[arg(long, value_name = "KEY", requires = "checkpoint")]
    checkpoint_fresh: Vec<String>,
}

#[derive(Debug, ClapArgs)]
struct GraphArgs {
    #[command(flatten)]
    pipeline: Pipeline,
    /// Output format; svg and png need Graphviz's `dot` installed.
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    format: Format,
    /// Where to write the graph (default: stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Dot,
    Svg,
    Png,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExecutorChoice {
    Tokio,
    AsyncStd,
    Smol,
    Rayon,
}

/// A panic payload the CLI raises itself for an expression that failed where an operator
/// takes no error (a key function): the node turns it into an error for the element, and the
/// panic hook keeps quiet about it.
pub(crate) fn quiet_panic(message: String) -> String {
    debug_assert!(message.starts_with(QUIET));
    message
}

/// How the messages of [`quiet_panic`] start (`build::failure` writes them).
const QUIET: &str = "on the element ";

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let quiet = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|s| s.starts_with(QUIET));
        if !quiet {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    match cli.command {
        Command::Ops => {
            print!("{}", ops::listing());
            ExitCode::SUCCESS
        }
        Command::Graph(args) => graph(args),
        Command::Run(args) => run_command(args),
    }
}

/// Reads the pipeline text; an error is already printed.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); try `30s`"))
}

fn pipeline_text(p: &Pipeline) -> Result<String, ExitCode> {
    match (&p.pipeline, &p.file) {
        (Some(text), _) => Ok(text.clone()),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            eprintln!("error: cannot read {}: {e}", path.display());
            ExitCode::from(2)
        }),
        (None, None) => unreachable!("clap requires one"),
    }
}

fn fail(err: &CliError, src: &str) -> ExitCode {
    eprint!("{}", err.render(src));
    ExitCode::from(2)
}

/// The error for an executor left out of this build.
#[cfg_attr(
    all(
        feature = "tokio",
        feature = "rayon",
        feature = "smol",
        feature = "async-std"
    ),
    allow(dead_code)
)]
fn missing(name: &str, feature: &str) -> CliError {
    CliError::new(format!("the {name} executor is not compiled into this streamz")).help(format!(
        "build it with `cargo install streamz-cli --features {feature}`, or choose another --executor"
    ))
}

/// The executor `choice` names; `--executor rayon` runs the graph on the pool that runs its
/// scattered stages.
fn executor(
    choice: ExecutorChoice,
    #[cfg(feature = "rayon")] pool: &streamz_rayon::Pool,
) -> Result<Arc<dyn Executor>, CliError> {
    match choice {
        #[cfg(feature = "tokio")]
        ExecutorChoice::Tokio => Ok(Arc::new(streamz_tokio::TokioExecutor::current())),
        #[cfg(not(feature = "tokio"))]
        ExecutorChoice::Tokio => Err(missing("tokio", "tokio")),
        #[cfg(feature = "rayon")]
        ExecutorChoice::Rayon => Ok(Arc::new(pool.clone())),
        #[cfg(not(feature = "rayon"))]
        ExecutorChoice::Rayon => Err(missing("rayon", "rayon")),
        #[cfg(feature = "smol")]
        ExecutorChoice::Smol => Ok(Arc::new(
            streamz_smol::SmolExecutor::background(
                std::thread::available_parallelism().map_or(2, usize::from),
            )
            .map_err(|e| CliError::new(format!("cannot start smol: {e}")))?,
        )),
        #[cfg(not(feature = "smol"))]
        ExecutorChoice::Smol => Err(missing("smol", "smol")),
        #[cfg(feature = "async-std")]
        ExecutorChoice::AsyncStd => Ok(Arc::new(streamz_asyncstd::AsyncStdExecutor::new())),
        #[cfg(not(feature = "async-std"))]
        ExecutorChoice::AsyncStd => Err(missing("async-std", "async-std")),
    }
}

/// The most threads `--threads` starts: far past any core count a pool can use.
const MAX_THREADS: usize = 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn prepare(
    src: &str,
    choice: ExecutorChoice,
    threads: usize,
    json: bool,
    resuming: bool,
) -> Result<(graph::Graph, graph::Runtime), CliError> {
    let program = parse::parse(src)?;
    if threads > MAX_THREADS {
        return Err(CliError::new(format!(
            "--threads {threads}: at most {MAX_THREADS} threads (0 is one per core)"
        )));
    }
    #[cfg(feature = "rayon")]
    let pool = streamz_rayon::Pool::new(threads)
        .map_err(|e| CliError::new(format!("cannot start the thread pool: {e}")))?;
    #[cfg(not(feature = "rayon"))]
    let _ = threads;
    let rt = graph::Runtime {
        executor: executor(
            choice,
            #[cfg(feature = "rayon")]
            &pool,
        )?,
        #[cfg(feature = "rayon")]
        pool: Some(pool),
        json_input: json,
        partitions: graph::Partitions::default(),
        resuming,
    };
    Ok((build::build(&program, src, &rt)?, rt))
}

fn run_command(args: RunArgs) -> ExitCode {
    let src = match pipeline_text(&args.pipeline) {
        Ok(src) => src,
        Err(code) => return code,
    };
    let rt = runtime();
    let checkpoint = args
        .checkpoint
        .as_ref()
        .map(|path| checkpoint::CheckpointArgs {
            path: path.clone(),
            key: args.checkpoint_key.clone(),
            every: args.checkpoint_every,
            fresh: args.checkpoint_fresh.clone(),
        });
    let outcome = rt.block_on(async {
        let opened = checkpoint.as_ref().map(checkpoint::open).transpose()?;
        let resuming = opened.as_ref().is_some_and(|o| o.resuming);
        let (mut graph, runtime) = prepare(&src, args.executor, args.threads, args.json, resuming)?;
        let checkpointing = match (opened, &checkpoint) {
            (Some(opened), Some(args)) => Some(checkpoint::start(&mut graph, opened, args)?),
            _ => None,
        };
        let _dashboard = match &args.dashboard {
            Some(addr) => Some(dashboard(&graph, &runtime, checkpointing.as_ref(), addr).await?),
            None => None,
        };
        let shutdown = run::Shutdown {
            drain_timeout: args.drain_timeout,
        };
        let partitions = runtime.partitions.clone();
        Ok::<_, CliError>(
            run::run(
                graph,
                args.on_error,
                args.stats,
                shutdown,
                partitions,
                checkpointing,
            )
            .await,
        )
    });
    rt.shutdown_background();
    match outcome {
        Err(err) => fail(&err, &src),
        Ok(outcome) if outcome.failed => ExitCode::from(2),
        Ok(_) => ExitCode::SUCCESS,
    }
}

/// Serves the graph's dashboard on `addr` while it runs.
async fn dashboard(
    graph: &graph::Graph,
    runtime: &graph::Runtime,
    checkpointing: Option<&checkpoint::Checkpointing>,
    addr: &str,
) -> Result<streamz_dashboard::Server, CliError> {
    let mut dashboard = streamz_dashboard::Dashboard::new();
    for feed in &graph.feeds {
        dashboard = dashboard.watch(&feed.stream);
    }
    #[cfg(feature = "rayon")]
    if let Some(pool) = &runtime.pool {
        dashboard = dashboard.pool("scatter", pool);
    }
    let partitions = runtime.partitions.clone();
    let mut dashboard = dashboard.partitions(move || partitions.now());
    if let Some(c) = checkpointing {
        let checkpoints = c.checkpoints.clone();
        dashboard = dashboard.checkpoints(move || checkpoints.last());
    }
    let server = dashboard.serve(addr).await.map_err(|e| {
        CliError::new(format!("cannot serve the dashboard on {addr}: {e}"))
            .help("choose another address with --dashboard=ADDR, such as --dashboard=127.0.0.1:0")
    })?;
    eprintln!("dashboard: {}", server.url());
    Ok(server)
}

fn graph(args: GraphArgs) -> ExitCode {
    let src = match pipeline_text(&args.pipeline) {
        Ok(src) => src,
        Err(code) => return code,
    };
    let rt = runtime();
    let dot = rt.block_on(async {
        let (graph, _) = prepare(&src, ExecutorChoice::Tokio, 1, false, false)?;
        let mut seen = std::collections::HashSet::new();
        let mut out = String::new();
        for feed in &graph.feeds {
            let dot = feed.stream.visualize();
            if seen.insert(dot.clone()) {
                out.push_str(&dot);
            }
        }
        Ok::<_, CliError>(out)
    });
    rt.shutdown_background();
    let dot = match dot {
        Ok(dot) => dot,
        Err(err) => return fail(&err, &src),
    };
    let bytes = match args.format {
        Format::Dot => dot.into_bytes(),
        Format::Svg | Format::Png => {
            let format = if args.format == Format::Svg {
                "-Tsvg"
            } else {
                "-Tpng"
            };
            let child = std::process::Command::new("dot")
                .arg(format)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn();
            let mut child = match child {
                Ok(child) => child,
                Err(e) => {
                    eprintln!("error: cannot run Graphviz's `dot` ({e})");
                    eprintln!(
                        "help: install Graphviz (`apt-get install graphviz`), or use --format dot"
                    );
                    return ExitCode::from(2);
                }
            };
            let mut stdin = child.stdin.take().expect("piped");
            let _ = stdin.write_all(dot.as_bytes());
            drop(stdin);
            match child.wait_with_output() {
                Ok(out) if out.status.success() => out.stdout,
                Ok(out) => {
                    eprintln!(
                        "error: `dot` failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("error: `dot` failed: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let written = match &args.output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
