//! The `streamz` binary, run for real: the pipelines the README promises, every source and
//! sink against a real file, socket, HTTP request or process, and every class of bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{post, spawn_announcing};
use predicates::prelude::*;

mod common;

fn streamz() -> Command {
    Command::cargo_bin("streamz").unwrap()
}

fn run(pipeline: &str) -> assert_cmd::assert::Assert {
    streamz()
        .args(["run", pipeline])
        .timeout(Duration::from_secs(60))
        .assert()
}

#[test]
fn map_and_rate_limit_print_one_to_ten_half_a_second_apart() {
    let start = Instant::now();
    run(r#"range 10 | map "x + 1" | rate_limit 500ms | sink stdout"#)
        .success()
        .stdout("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
    // nine gaps of 500 ms; generous above, for a loaded machine
    assert!(
        start.elapsed() >= Duration::from_millis(4500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn filter_and_accumulate() {
    run(r#"range 10 | filter "x % 2 == 0" | accumulate "acc + x" start=0 | sink stdout"#)
        .success()
        .stdout("0\n2\n6\n12\n20\n");
}

#[test]
fn sliding_window_is_partial_at_first() {
    run("range 5 | sliding_window 2 | sink stdout")
        .success()
        .stdout("[0]\n[0,1]\n[1,2]\n[2,3]\n[3,4]\n");
}

#[test]
fn partition_flushes_the_remainder_at_end_of_stream() {
    run("range 7 | partition 3 | sink stdout")
        .success()
        .stdout("[0,1,2]\n[3,4,5]\n[6]\n");
}

#[test]
fn partition_unique_keeps_the_first_or_the_last_of_a_key() {
    let values = r#"values "[1, 2, 1, 3, 1, 3, 3, 2]""#;
    run(&format!("{values} | partition_unique 3"))
        .success()
        .stdout("[1,2,3]\n[1,3,2]\n");
    run(&format!("{values} | partition_unique 3 keep=last"))
        .success()
        .stdout("[2,1,3]\n[1,3,2]\n");
    // by key: the parity; the remainder at end of stream
    run(&format!("{values} | partition_unique 2 key='x % 2'"))
        .success()
        .stdout("[1,2]\n[1,2]\n");
    run(&format!("{values} | partition_unique 3 keep=middle"))
        .code(2)
        .stderr(predicate::str::contains("keep is `first` or `last`"));
}

#[test]
fn a_pipeline_without_a_sink_prints_to_stdout() {
    run("values '[1, \"a\", {\"b\": [2]}]'")
        .success()
        .stdout("1\n\"a\"\n{\"b\":[2]}\n");
}

#[test]
fn named_streams_join() {
    run("a = range 3; b = values '[10, 20, 30]'; zip a b")
        .success()
        .stdout("[0,10]\n[1,20]\n[2,30]\n");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "# two streams\nodd = range 1 6 2\neven = range 0 6 2\nodd | union even | count\n",
    )
    .unwrap();
    streamz()
        .args(["run", "-f"])
        .arg(file.path())
        .assert()
        .success()
        .stdout("6\n");
}

#[test]
fn scatter_and_gather_on_the_pool() {
    run(r#"range 20 | scatter | map "x * x" | buffer 4 | gather | slice 17"#)
        .success()
        .stdout("289\n324\n361\n");
}

#[test]
fn operators_with_options() {
    run(r#"range 6 | accumulate "[acc + x, acc * x]" start=0 returns_state=true"#)
        .success()
        .stdout("0\n0\n2\n9\n24\n50\n");
    run("range 4 | sliding_window 3 return_partial=false")
        .success()
        .stdout("[0,1,2]\n[1,2,3]\n");
    run(r#"values '[1, 2, 1, 3, 2]' | unique"#)
        .success()
        .stdout("1\n2\n3\n");
    run(r#"range 10 | slice 1 7 3"#).success().stdout("1\n4\n");
    run(r#"values '[{"a": 1}, {"a": 2}]' | pluck a"#)
        .success()
        .stdout("1\n2\n");
    run(r#"values '[[1, 2], [], [3]]' | flatten"#)
        .success()
        .stdout("1\n2\n3\n");
    run(r#"values '["[1]", "{\"a\": null}"]' | json"#)
        .success()
        .stdout("[1]\n{\"a\":null}\n");
    run(r#"range 4 | delay 10ms | timed_window 1s"#)
        .success()
        .stdout("[0,1,2,3]\n");
}

// ---------------------------------------------------------------- sources and sinks

#[test]
fn stdin_lines_as_strings_or_json() {
    streamz()
        .args(["run", "stdin"])
        .write_stdin("a b\nc\n")
        .assert()
        .success()
        .stdout("\"a b\"\n\"c\"\n");
    streamz()
        .args(["run", "--json", r#"stdin | map "x * 2""#])
        .write_stdin("1\n2\n")
        .assert()
        .success()
        .stdout("2\n4\n");
}

#[test]
fn a_text_file_is_read_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.jsonl");
    std::fs::write(&input, "1\n2\n3\n").unwrap();
    let pipeline = format!(
        r#"from_textfile '{}' follow=false json=true | map "x + 100" | sink_to_textfile '{}'"#,
        input.display(),
        output.display()
    );
    run(&pipeline).success().stdout("");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "101\n102\n103\n");
}

/// Starts `streamz run PIPELINE` in the background and returns it with the address it
/// printed for its server.
fn serve(pipeline: &str) -> (Child, String, BufReader<std::process::ChildStderr>) {
    spawn_announcing(&["run", "--on-error", "skip", pipeline], "listening on ")
}

/// Ctrl-C: the sources close, and the command exits 0.
fn interrupt(child: &mut Child) -> (String, String) {
    let status = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    (out, String::new())
}

#[test]
fn from_textfile_follows_a_growing_file_until_ctrl_c_which_flushes_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    std::fs::write(&path, "a\n").unwrap();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("streamz"))
        .args([
            "run",
            &format!(
                "from_textfile '{}' poll_interval=20ms | partition 10",
                path.display()
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"b\nc\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (out, _) = interrupt(&mut child);
    assert_eq!(out, "[\"a\",\"b\",\"c\"]\n");
}

#[test]
fn filenames_lists_matching_paths() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["b.csv", "a.csv", "c.txt"] {
        std::fs::write(dir.path().join(name), "").unwrap();
    }
    let pattern = format!("{}/*.csv", dir.path().display());
    let a = format!("{}/a.csv", dir.path().display());
    let b = format!("{}/b.csv", dir.path().display());
    run(&format!("filenames '{pattern}'"))
        .success()
        .stdout(format!(
            "{}\n{}\n",
            serde_json::json!(a),
            serde_json::json!(b)
        ));
}

#[test]
fn from_process_reads_a_commands_output() {
    run(r#"from_process 'printf "1\n2\n"' json=true | map "x * 3""#)
        .success()
        .stdout("3\n6\n");
    run("from_process 'exit 3'")
        .code(2)
        .stderr(predicate::str::contains("exited with exit status: 3"));
}

#[test]
fn from_periodic_evaluates_an_expression() {
    run(r#"from_periodic "x * 10" interval=10ms limit=3"#)
        .success()
        .stdout("0\n10\n20\n");
}

#[test]
fn from_tcp_takes_lines_and_drops_overlong_ones() {
    let (mut child, addr, mut stderr) = serve("from_tcp 0 max_line=8 | map \"x + '!'\"");
    let mut socket = TcpStream::connect(&addr).unwrap();
    socket
        .write_all(b"hello\nthis line is too long\nbye\n")
        .unwrap();
    drop(socket);
    let mut warning = String::new();
    stderr.read_line(&mut warning).unwrap();
    assert!(warning.contains("over 8 bytes"), "{warning}");
    std::thread::sleep(Duration::from_millis(300));
    let (out, _) = interrupt(&mut child);
    assert_eq!(out, "\"hello!\"\n\"bye!\"\n");
}

#[test]
fn from_http_server_takes_bodies_and_refuses_big_ones() {
    let (mut child, addr, _stderr) =
        serve("from_http_server 0 max_body=16 json=true | map \"x.n\"");
    let _ = &mut child;
    assert!(post(&addr, "/", r#"{"n": 1}"#).starts_with("HTTP/1.1 200"));
    assert!(post(&addr, "/", r#"{"n": "a very long body"}"#).starts_with("HTTP/1.1 413"));
    assert!(post(&addr, "/", "not json").starts_with("HTTP/1.1 400"));
    assert!(post(&addr, "/", r#"{"n": 2}"#).starts_with("HTTP/1.1 200"));
    let (out, _) = interrupt(&mut child);
    assert_eq!(out, "1\n2\n");
}

/// The map's elements out, read off the dashboard's `/metrics` at `addr`.
fn map_count(addr: &str) -> u64 {
    let reply = common::get(addr, "/metrics");
    reply
        .lines()
        .find(|l| {
            l.starts_with("streamz_node_elements_out_total{") && l.contains("operator=\"map\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no map count in {reply}"))
}

/// Runs `streamz run ARGS` with a dashboard: the page is served at the address it announces,
/// and the map's count moves.
fn serves_a_dashboard(args: &[&str]) -> String {
    let (mut child, url, _stderr) = spawn_announcing(args, "dashboard: http://");
    let addr = url.strip_suffix("/status").unwrap().to_owned();
    assert!(common::get(&addr, "/status").contains("EventSource"));
    let first = map_count(&addr);
    std::thread::sleep(Duration::from_millis(300));
    let second = map_count(&addr);
    assert!(second > first, "{first} then {second}");
    let (out, _) = interrupt(&mut child);
    assert_eq!(out, "");
    addr
}

const DASHBOARD_PIPELINE: &str = r#"range 1000000 | rate_limit 1ms | map "x * 2" | sink null"#;

/// The issue's own command, word for word: `--dashboard` alone takes the default address and
/// leaves the next word to be the pipeline. (The only test that uses port 8787.)
#[test]
fn dashboard_alone_serves_on_the_default_address() {
    let addr = serves_a_dashboard(&["run", "--dashboard", DASHBOARD_PIPELINE]);
    assert_eq!(addr, "127.0.0.1:8787");
}

#[test]
fn dashboard_takes_an_address_after_an_equals_sign() {
    let addr = serves_a_dashboard(&["run", "--dashboard=127.0.0.1:0", DASHBOARD_PIPELINE]);
    assert!(
        addr.starts_with("127.0.0.1:") && addr != "127.0.0.1:0",
        "{addr}"
    );
}

/// `--stats` reads the core's metrics, so with a dashboard `/api/graph` shows the stages the
/// user wrote, each once, and no conversion or counting nodes.
#[test]
fn stats_and_the_dashboard_show_only_the_users_stages() {
    let stages = [
        "range 1000000",
        "rate_limit 1ms",
        "sliding_window 3",
        "partition 2",
        "flatten",
        "frequencies",
        "range 100",
        "scatter",
        r#"map "x + 1""#,
        "gather",
        "zip a b",
        "sink null",
    ];
    let pipeline = format!(
        "a = {} | {} | {} | {} | {} | {}; b = {} | {} | {} | {}; {} | {}",
        stages[0],
        stages[1],
        stages[2],
        stages[3],
        stages[4],
        stages[5],
        stages[6],
        stages[7],
        stages[8],
        stages[9],
        stages[10],
        stages[11]
    );
    let (mut child, url, _stderr) = spawn_announcing(
        &["run", "--stats", "--dashboard=127.0.0.1:0", &pipeline],
        "dashboard: http://",
    );
    let addr = url.strip_suffix("/status").unwrap().to_owned();
    let reply = common::get(&addr, "/api/graph");
    let body = &reply[reply.find('{').unwrap()..=reply.rfind('}').unwrap()];
    let graph: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut names: Vec<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = stages.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(names, expected, "{body}");
    // (stopped here: a zip with one side ended holds elements it cannot match)
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sinks_null_and_count() {
    run("range 5 | sink null").success().stdout("");
    run("range 5 | count").success().stdout("5\n");
}

// ---------------------------------------------------------------- bad input

#[test]
fn an_unknown_operator_suggests_the_nearest() {
    run(r#"range 10 | mapp "x + 1""#)
        .code(2)
        .stderr("error: unknown operator `mapp`\n  | range 10 | mapp \"x + 1\"\n               ^^^^\nhelp: did you mean `map`? `streamz ops` lists every operator\n");
}

#[test]
fn a_wrong_argument_is_named() {
    run("range ten")
        .code(2)
        .stderr(predicate::str::contains("`ten` is not a whole number"));
    run("range 5 | sliding_window 2 retrun_partial=false")
        .code(2)
        .stderr(
            predicate::str::contains("no option `retrun_partial`")
                .and(predicate::str::contains("did you mean `return_partial`")),
        );
    run("range 5 | rate_limit soon")
        .code(2)
        .stderr(predicate::str::contains("not a duration"));
    run("range 5 | buffer 0")
        .code(2)
        .stderr(predicate::str::contains("n must be at least 1"));
    run("range 5 | zip nowhere")
        .code(2)
        .stderr(predicate::str::contains("no stream named `nowhere`"));
    run("map \"x\"")
        .code(2)
        .stderr(predicate::str::contains("must start with a source"));
    run("range 5 | timed_window 0s")
        .code(2)
        .stderr(predicate::str::contains(
            "interval must be longer than zero",
        ));
    run("from_periodic x interval=0ms")
        .code(2)
        .stderr(predicate::str::contains(
            "interval must be longer than zero",
        ));
    run("range 5 | union streams=a")
        .code(2)
        .stderr(predicate::str::contains(
            "takes the names of streams by position",
        ));
}

#[test]
fn an_expression_that_does_not_parse_is_marked() {
    run(r#"range 10 | map "x + * 1""#).code(2).stderr(
        "error: the expression `x + * 1` does not parse: Unexpected '*'\n  | range 10 | map \"x + * 1\"\n                        ^\nhelp: expressions are rhai (https://rhai.rs), such as \"x + 1\" or \"x.name == `a`\"\n",
    );
    run(r#"range 3 | map "y""#)
        .code(2)
        .stderr(predicate::str::contains("help: the expression can use `x`"));
    run(r#"range 3 | map "x"#)
        .code(2)
        .stderr(predicate::str::contains("quote is not closed"));
}

#[test]
fn a_runtime_error_names_the_stage_and_the_element() {
    run(r#"values '[1, 0, 2]' | map "10 / x""#)
        .code(2)
        .stdout("10\n")
        .stderr(predicate::str::starts_with(
            "error: stage `map \"10 / x\"` failed on the element 0: Division by zero",
        ));
    run(r#"values '[1, 0, 2]' | map "10 / x""#)
        .code(2)
        .stderr(predicate::str::contains("panicked").not());
    streamz()
        .args([
            "run",
            "--on-error",
            "skip",
            r#"values '[1, 0, 2]' | map "10 / x""#,
        ])
        .assert()
        .success()
        .stdout("10\n5\n");
}

#[test]
fn bad_input_lines_fail_or_are_skipped() {
    streamz()
        .args(["run", "--json", "stdin"])
        .write_stdin("1\n{bad\n3\n")
        .assert()
        .code(2)
        .stdout("1\n")
        .stderr(predicate::str::starts_with("error: stdin:2: invalid JSON"));
    streamz()
        .args(["run", "--json", "--on-error", "skip", "stdin"])
        .write_stdin("1\n{bad\n3\n")
        .assert()
        .success()
        .stdout("1\n3\n")
        .stderr(
            predicate::str::contains("stdin:2: invalid JSON")
                .and(predicate::str::contains("skipped")),
        );
}

#[test]
fn an_executor_that_is_not_compiled_in_is_a_clear_error() {
    #[cfg(not(feature = "smol"))]
    run_with(&["--executor", "smol"])
        .code(2)
        .stderr(predicate::str::contains(
            "smol executor is not compiled into this streamz",
        ));
    run_with(&["--executor", "rayon"])
        .success()
        .stdout("0\n1\n");
}

/// Every executor compiled in runs a pipeline with timers, a pool and a join alike.
/// (`.ci/run` also runs this with `--features smol,async-std`.)
#[test]
fn every_compiled_executor_runs_the_same_pipeline() {
    let program = "a = range 3 | map \"x * 2\" | rate_limit 10ms | sliding_window 2\n\
                   b = values '[\"a\", \"b\", \"c\"]' | delay 5ms\n\
                   zip a b | scatter | map 'x[1] + x[0].len() + x[0][-1]' | gather | partition 2";
    let expected = "[\"a10\",\"b22\"]\n[\"c24\"]\n";
    let mut executors = Vec::new();
    if cfg!(feature = "tokio") {
        executors.push("tokio");
    }
    if cfg!(feature = "rayon") {
        executors.push("rayon");
    }
    if cfg!(feature = "smol") {
        executors.push("smol");
    }
    if cfg!(feature = "async-std") {
        executors.push("async-std");
    }
    for executor in executors {
        let out = streamz()
            .args(["run", "--executor", executor, program])
            .timeout(Duration::from_secs(60))
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert_eq!(
            String::from_utf8_lossy(&out),
            expected,
            "--executor {executor}"
        );
    }
}

#[test]
fn stats_print_a_table_of_stages_at_the_end() {
    let out = streamz()
        .args([
            "run",
            "--stats",
            r#"range 1000 | map "x * 2" | filter "x % 3 == 0" | sink null"#,
        ])
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .stdout("")
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    let table = |name: &str| {
        err.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().rev().take(2).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no row for {name} in:\n{err}"))
    };
    assert!(err.starts_with("stage "), "{err}");
    assert_eq!(table("range 1000"), ["1000", "-"], "{err}");
    assert_eq!(table("map \"x * 2\""), ["1000", "1000"], "{err}");
    assert_eq!(table("filter \"x % 3 == 0\""), ["334", "1000"], "{err}");
    assert_eq!(table("sink null"), ["-", "334"], "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("1000 elements in ") && l.ends_with(", 0 errors")),
        "{err}"
    );
}

#[test]
fn stats_print_a_line_a_second_while_running() {
    // two seconds of work: the line after the first second shows what has passed so far
    let out = streamz()
        .args(["run", "--stats", "range 3 | rate_limit 1s | sink null"])
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    let live = err
        .lines()
        .find(|l| l.starts_with("1 s: "))
        .unwrap_or_else(|| panic!("no live line in:\n{err}"));
    assert!(
        live.starts_with("1 s: range 3: ")
            && live.contains(" | rate_limit 1s: ")
            && live.contains(" | sink null: "),
        "{live}"
    );
    assert!(err.contains("3 elements in "), "{err}");
}

fn run_with(flags: &[&str]) -> assert_cmd::assert::Assert {
    streamz().arg("run").args(flags).arg("range 2").assert()
}

// ---------------------------------------------------------------- graph, ops, help

#[test]
fn graph_prints_dot() {
    streamz()
        .args(["graph", r#"range 3 | map "x + 1" | sliding_window 2"#])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("digraph {").and(
            predicate::str::contains("map \\\"x + 1\\\"").or(predicate::str::contains("map")),
        ));
}

/// `dot` renders what `streamz graph` prints, and `--format svg|png` runs it. Needs Graphviz,
/// which `.ci/run` installs (and requires, with `STREAMZ_REQUIRE_DOT`); elsewhere, without
/// `dot`, the test says it skipped.
#[test]
fn graph_output_renders_with_dot() {
    if StdCommand::new("dot").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("STREAMZ_REQUIRE_DOT").is_none(),
            "Graphviz's `dot` is missing; .ci/run installs it"
        );
        eprintln!("skipped: Graphviz's `dot` is not installed");
        return;
    }
    let program = "a = range 3 | map \"x + 1\" | sliding_window 2\n\
                   b = values '[\"q\", \"r|s\"]'\n\
                   zip a b | scatter | map 'x[1]' | gather | sink null";
    let dot = streamz()
        .args(["graph", program])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut child = StdCommand::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&dot).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "dot refused:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&dot)
    );
    let svg = String::from_utf8(out.stdout).unwrap();
    for label in ["range 3", "sliding_window 2", "zip", "scatter", "gather"] {
        assert!(svg.contains(label), "{label} not drawn:\n{svg}");
    }

    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("graph.svg");
    let png = dir.path().join("graph.png");
    streamz()
        .args(["graph", "--format", "svg", "-o"])
        .arg(&svg)
        .arg(program)
        .assert()
        .success();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    streamz()
        .args(["graph", "--format", "png", "-o"])
        .arg(&png)
        .arg(program)
        .assert()
        .success();
    assert!(
        std::fs::read(&png)
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n")
    );
}

#[test]
fn ops_lists_every_operator() {
    let out = streamz()
        .arg("ops")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    for op in [
        "range",
        "from_http_server",
        "map",
        "accumulate",
        "sliding_window",
        "zip",
        "scatter",
        "gather",
        "sink_to_textfile",
        "count",
    ] {
        assert!(
            out.contains(&format!("  {op}")),
            "{op} missing from:\n{out}"
        );
    }
}

#[test]
fn help_reads_well() {
    streamz()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Usage: streamz <COMMAND>"));
    streamz()
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--on-error"));
}

#[test]
fn event_time_windows_with_dates_keys_and_a_late_stream() {
    let events = r#"[{"u":"a","at":"2026-12-07T10:00:05Z"},{"u":"b","at":"2026-12-07T10:00:50Z"},{"u":"a","at":"2026-12-07T10:01:10Z"},{"u":"a","at":"2026-12-07T10:00:30Z"},{"u":"b","at":"2026-12-07T10:02:01Z"}]"#;
    // minutes from 10:00 (1796637600 s), per user; 10:00:30 comes after the watermark passed
    // 10:01, and goes to `slow`
    run(&format!(
        r##"values {events} | watermarks time=x.at | window tumbling 1m time=x.at key=x.u late=slow | map "[x.key, (x.start - 1796637600) / 60, x.value]"; slow | map "#{{late: x.at}}""##
    ))
    .success()
    .stdout(
        [
            r#"["a",0,1]"#,
            r#"["b",0,1]"#,
            r#"{"late":"2026-12-07T10:00:30Z"}"#,
            r#"["a",1,1]"#,
            r#"["b",2,1]"#,
            "",
        ]
        .join("\n"),
    );
}

#[test]
fn a_late_element_with_no_late_stream_fails_the_run_saying_when() {
    run(r#"values [{"t":1},{"t":12},{"t":2}] | watermarks time=x.t | window tumbling 10s time=x.t | sink null"#)
        .failure()
        .stderr(predicate::str::contains(
            "an element at 2s came when the watermark was 12s",
        ));
}

#[test]
fn windows_that_cannot_be_are_refused_when_built() {
    for (pipeline, says) in [
        (
            "range 3 | window hopping 1s time=x",
            "`hopping` is not a window",
        ),
        ("range 3 | window sliding 1s time=x", "needs a slide"),
        (
            "range 3 | window sliding 1s 2s time=x",
            "must not be longer than its size",
        ),
        (
            "range 3 | window session 1s 1s time=x",
            "takes one duration",
        ),
        ("range 3 | window tumbling 0s time=x", "longer than zero"),
        (
            "range 3 | window tumbling 1s time=x unit=days",
            "not a unit of time",
        ),
        ("range 3 | throttle 1s leading=false", "passes nothing on"),
    ] {
        run(pipeline).code(2).stderr(predicate::str::contains(says));
    }
}

#[test]
fn a_time_that_is_not_one_is_the_elements_error() {
    run(r#"values [{"t":1},{"t":"soon"}] | window tumbling 1s time=x.t | sink null"#)
        .failure()
        .stderr(predicate::str::contains(
            r#"the time `x.t` is "soon", not a number or an RFC 3339 date"#,
        ));
}
