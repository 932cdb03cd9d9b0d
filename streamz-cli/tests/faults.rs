//! The fault suite: each situation that once lost data, hung or crashed
//! (`shared/reference/faults-2026-12.md`), run against the built `streamz`, with counts in and
//! out compared: nothing accepted is lost, nothing is delivered twice, every failure exits
//! non-zero. Servers bind to 127.0.0.1 on a free port; every client loop is bounded in count
//! and time.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{post, spawn_announcing};

fn streamz() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("streamz"))
}

/// `streamz run ARGS…`: stdout, stderr and the exit status, within 60 s.
fn run(args: &[&str], stdin: &[u8]) -> (String, String, ExitStatus) {
    let mut child = streamz()
        .arg("run")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = wait_within(child, Duration::from_secs(60));
    writer.join().unwrap();
    out
}

/// Waits for `child` and reads what is left of its stdout and stderr (those not taken).
fn wait_within(mut child: Child, limit: Duration) -> (String, String, ExitStatus) {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (tx, rx) = mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        if let Some(s) = &mut stdout {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(s) = &mut stderr {
            let _ = s.read_to_string(&mut err);
        }
        let _ = tx.send((out, err));
    });
    let (out, err) = rx.recv_timeout(limit).unwrap_or_else(|_| {
        kill(id, "KILL");
        panic!("streamz did not end within {limit:?}")
    });
    (out, err, child.wait().unwrap())
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts `streamz run ARGS…` and returns it with the address it announced ("listening on").
fn serve(args: &[&str]) -> (Child, String, BufReader<ChildStderr>) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    spawn_announcing(&all, "listening on ")
}

/// Reads stderr lines until one contains `what`; returns everything read.
fn read_until(stderr: &mut BufReader<ChildStderr>, what: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("stderr ended without {what:?}: {seen}");
        }
        seen.push_str(&line);
        if line.contains(what) {
            return seen;
        }
    }
}

/// The `--stats` summary's figure for a stage: (in, out).
fn stage_counts(stderr: &str, stage: &str) -> (Option<u64>, Option<u64>) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with(stage) && !l.contains(": "))
        .unwrap_or_else(|| panic!("no summary line for {stage} in {stderr}"));
    // the last two words: in (or `-`), out (or `-`)
    let mut figures = line.split_whitespace().rev().map(|w| w.parse().ok());
    let out = figures.next().flatten();
    (figures.next().flatten(), out)
}

// ------------------------------------------------------------------------- end of stream

#[test]
fn a_remainder_flushed_into_a_full_buffer_is_counted_on_every_executor() {
    // smol and async-std when this build has them (`.ci/run` builds it with both)
    for executor in ["tokio", "rayon", "smol", "async-std"] {
        for (pipeline, expected) in [
            ("range 7 | partition 2 | buffer 1 | count", "4\n"),
            (
                "range 1001 | partition 10 | buffer 5 | rate_limit 1ms | count",
                "101\n",
            ),
            (
                "values [1,2,3] | partition 2 | buffer 1 | rate_limit 50ms | count",
                "2\n",
            ),
        ] {
            let (out, err, status) = run(&["--executor", executor, pipeline], b"");
            if err.contains("is not compiled into this streamz") {
                continue;
            }
            assert!(status.success(), "{pipeline}: {status} {err}");
            assert_eq!(out, expected, "{pipeline} on {executor}");
        }
    }
}

// ------------------------------------------------------------------------------ signals

/// One client writes numbered lines as fast as the pipeline takes them for `for_how_long`;
/// returns how many it wrote.
fn feed_numbers(addr: &str, for_how_long: Duration) -> std::thread::JoinHandle<u64> {
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        let mut socket = TcpStream::connect(&addr).unwrap();
        socket
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < for_how_long && i < 1_000_000 {
            if socket.write_all(format!("{i}\n").as_bytes()).is_err() {
                break;
            }
            i += 1;
        }
        i
    })
}

/// `from_tcp | buffer 1000 | rate_limit 1ms | sink_to_textfile`, stopped by `signal` while
/// the client is held back by a full buffer: every line `from_tcp` took is in the file, once,
/// in order, and the command exits 0 after saying it drains.
fn a_signal_drains_what_from_tcp_took(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.txt");
    let pipeline = format!(
        "from_tcp 0 | buffer 1000 | rate_limit 1ms | sink_to_textfile '{}'",
        file.display()
    );
    let (child, addr, mut stderr) = serve(&["--stats", &pipeline]);
    let client = feed_numbers(&addr, Duration::from_millis(1500));
    std::thread::sleep(Duration::from_millis(1200));
    kill(child.id(), signal);
    let said = read_until(&mut stderr, "draining");
    assert!(said.contains("send the signal again to stop now"), "{said}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let mut child = child;
    let status = child.wait().unwrap();
    let sent = client.join().unwrap();
    assert!(status.success(), "{status}: {rest}");
    let (_, taken) = stage_counts(&rest, "from_tcp");
    let taken = taken.unwrap_or_else(|| panic!("no count out of from_tcp in {rest}"));
    let written: Vec<u64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| l.trim_matches('"').parse().unwrap())
        .collect();
    // the buffer was full when the signal came: the test saw the case it is about
    assert!(taken > 1000, "only {taken} taken of {sent} sent");
    assert_eq!(
        written.len() as u64,
        taken,
        "{signal}: taken {taken}, written {}",
        written.len()
    );
    assert_eq!(
        written,
        (0..taken).collect::<Vec<_>>(),
        "in order, once each"
    );
}

#[test]
fn sigterm_drains_what_from_tcp_took() {
    a_signal_drains_what_from_tcp_took("TERM");
}

#[test]
fn sigint_drains_what_from_tcp_took_including_the_element_waiting_for_room() {
    a_signal_drains_what_from_tcp_took("INT");
}

/// Starts `streamz run ARGS…` (a long drain, whose stdout nobody reads) and gives its stderr.
fn start_slow(args: &[&str]) -> (Child, BufReader<ChildStderr>) {
    let mut child = streamz()
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    (child, stderr)
}

#[test]
fn a_second_signal_stops_within_a_second_and_counts_what_it_abandoned() {
    for (first, second, code) in [
        ("INT", "INT", 130),
        ("TERM", "TERM", 143),
        ("TERM", "INT", 130),
    ] {
        let (mut child, mut stderr) =
            start_slow(&["range 100000 | buffer 1000 | rate_limit 100ms | count"]);
        std::thread::sleep(Duration::from_millis(500));
        kill(child.id(), first);
        read_until(&mut stderr, "draining");
        let start = Instant::now();
        kill(child.id(), second);
        let said = read_until(&mut stderr, "abandoned");
        let status = child.wait().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(status.code(), Some(code), "{first} then {second}: {said}");
        // about a buffer's worth was abandoned, and the message says how many
        let abandoned: u64 = said
            .split_whitespace()
            .rev()
            .find_map(|w| w.parse().ok())
            .unwrap();
        assert!((900..=1100).contains(&abandoned), "{said}");
    }
}

#[test]
fn the_drain_timeout_stops_a_long_drain() {
    let (mut child, mut stderr) = start_slow(&[
        "--drain-timeout",
        "300ms",
        "range 100000 | buffer 1000 | rate_limit 100ms | count",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    kill(child.id(), "TERM");
    let said = read_until(&mut stderr, "abandoned");
    assert!(said.contains("for at most 300ms"), "{said}");
    assert!(said.contains("drain timed out"), "{said}");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_closed_stdout_ends_the_run_at_once_and_quietly() {
    let start = Instant::now();
    let mut child = streamz()
        .args(["run", "range 100000000 | buffer 10000 | rate_limit 10ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    stdout.read_line(&mut lines).unwrap();
    stdout.read_line(&mut lines).unwrap();
    assert_eq!(lines, "0\n1\n");
    drop(stdout); // `| head -2`
    let (_, err, status) = wait_within(child, Duration::from_secs(10));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(status.success(), "{status}");
    assert_eq!(err, "", "quietly");
}

// --------------------------------------------------------------------------- bad numbers

#[test]
fn huge_sizes_cost_only_what_is_held() {
    // under a 1 GB address-space limit: the 3.9 GB preallocation of old would fail here
    for (pipeline, lines) in [
        ("range 3 | buffer 18446744073709551615", 3),
        ("range 3 | buffer 100000000", 3),
        ("range 3 | sliding_window 1000000000000", 3),
        ("range 3 | unique maxsize=18446744073709551615", 3),
        ("range 3 | partition 18446744073709551615", 1),
        (
            "range 3 | scatter | map \"x\" | buffer 18446744073709551615 | gather",
            3,
        ),
    ] {
        let shell = format!(
            "ulimit -v 1000000; exec '{}' run '{}'",
            assert_cmd::cargo::cargo_bin("streamz").display(),
            pipeline.replace('\'', "'\\''")
        );
        let out = Command::new("sh").args(["-c", &shell]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{pipeline}: {} {stderr}", out.status);
        assert_eq!(stdout.lines().count(), lines, "{pipeline}: {stdout}");
    }
}

#[test]
fn range_at_the_limits_of_i64_is_pythons() {
    let cases = [
        (
            "range 9223372036854775806 9223372036854775807 5",
            "9223372036854775806\n",
        ),
        (
            "range -9223372036854775807 -9223372036854775808 -5",
            "-9223372036854775807\n",
        ),
        (
            "range -9223372036854775808 9223372036854775807 4611686018427387904",
            "-9223372036854775808\n-4611686018427387904\n0\n4611686018427387904\n",
        ),
    ];
    for (pipeline, expected) in cases {
        let (out, err, status) = run(&[pipeline], b"");
        assert!(status.success(), "{pipeline}: {err}");
        assert_eq!(out, expected, "{pipeline}");
    }
}

#[test]
fn bad_numbers_and_paths_exit_2_with_a_message() {
    for (args, says) in [
        (
            vec!["--threads", "1000000", "range 3"],
            "at most 1024 threads",
        ),
        (
            vec!["from_http_server 0 path=nopath"],
            "not a plain URL path",
        ),
        (
            vec!["from_http_server 0 path=/a/*rest"],
            "not a plain URL path",
        ),
        (
            vec!["from_http_server 0 max_requests=0"],
            "max_requests must be",
        ),
        (
            vec!["values [1.0, 0.0] | map \"10.0 / x\""],
            "which JSON cannot hold",
        ),
    ] {
        let (_, err, status) = run(&args, b"");
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

// -------------------------------------------------------------------------------- inputs

#[test]
fn invalid_utf8_is_one_lines_error_in_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.txt");
    std::fs::write(&file, b"ok\n\xff\nok\n").unwrap();
    let from_file = format!("from_textfile '{}' follow=false | count", file.display());
    let from_process = r#"from_process "printf 'ok\n\377\nok\n'" | count"#;
    for pipeline in ["stdin | count", from_file.as_str(), from_process] {
        let (out, err, status) = run(&["--on-error", "skip", pipeline], b"ok\n\xff\nok\n");
        assert!(status.success(), "{pipeline}: {err}");
        assert_eq!(out, "2\n", "{pipeline}");
        assert!(
            err.contains(":2: the line is not valid UTF-8 (skipped)"),
            "{pipeline}: {err}"
        );
        let (_, err, status) = run(&[pipeline], b"ok\n\xff\nok\n");
        assert_eq!(status.code(), Some(2), "{pipeline}: {err}");
    }
}

#[test]
fn a_line_over_max_line_is_dropped_without_being_held() {
    let mut input = vec![b'a'; 3 << 20];
    input.extend_from_slice(b"\nshort\n");
    let (out, err, status) = run(&["--on-error", "skip", "stdin | count"], &input);
    assert!(status.success(), "{err}");
    assert_eq!(out, "1\n");
    assert!(err.contains("over 1048576 bytes (max_line)"), "{err}");
    let (out, _, status) = run(&["stdin max_line=4 | count"], b"abc\nabcd\n");
    assert!(status.success());
    assert_eq!(out, "2\n");
}

// ------------------------------------------------------------------------------- servers

#[test]
fn from_tcp_refuses_clients_past_max_connections_and_serves_the_rest() {
    let (child, addr, _stderr) = serve(&["from_tcp 0 max_connections=5 | count"]);
    let clients: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for mut c in clients {
        let _ = c.write_all(b"x\n");
    }
    std::thread::sleep(Duration::from_millis(300));
    // when the others have gone, a new client is served again
    let mut late = TcpStream::connect(&addr).unwrap();
    late.write_all(b"late\n").unwrap();
    drop(late);
    std::thread::sleep(Duration::from_millis(300));
    kill(child.id(), "INT");
    let (out, err, status) = wait_within(child, Duration::from_secs(10));
    assert!(status.success(), "{err}");
    assert_eq!(out, "6\n", "{err}");
}

#[test]
fn from_tcp_keeps_serving_when_file_descriptors_run_out() {
    let shell = format!(
        "ulimit -n 40; exec '{}' run 'from_tcp 0 | count'",
        assert_cmd::cargo::cargo_bin("streamz").display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &shell])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let said = read_until(&mut stderr, "listening on ");
    let addr = said.trim().rsplit(' ').next().unwrap().to_owned();
    // more connections than descriptors: some cannot be accepted
    let mut clients = Vec::new();
    for _ in 0..80 {
        if let Ok(c) = TcpStream::connect(&addr) {
            clients.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    for c in &mut clients {
        let _ = c.write_all(b"x\n");
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(clients);
    std::thread::sleep(Duration::from_millis(500));
    let mut late = TcpStream::connect(&addr).unwrap();
    late.write_all(b"late\n").unwrap();
    drop(late);
    std::thread::sleep(Duration::from_millis(500));
    kill(child.id(), "INT");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let (out, _, status) = wait_within(child, Duration::from_secs(10));
    assert!(status.success(), "{status}: {rest}");
    let counted: u64 = out.trim().parse().unwrap();
    assert!(rest.contains("cannot accept a connection"), "{rest}");
    // the connected clients' lines and the late one are counted
    assert!(counted >= 20, "counted {counted}: {rest}");
}

#[test]
fn a_partial_http_request_holds_a_stop_only_for_the_grace_period() {
    let (child, addr, mut stderr) = serve(&["from_http_server 0 grace=500ms | count"]);
    let mut partial = TcpStream::connect(&addr).unwrap();
    partial
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n")
        .unwrap();
    assert!(post(&addr, "/", "hello").starts_with("HTTP/1.1 200"));
    let start = Instant::now();
    kill(child.id(), "INT");
    let (out, _, status) = wait_within(child, Duration::from_secs(10));
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(out, "1\n");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("were dropped"), "{err}");
    drop(partial);
}

#[test]
fn http_headers_and_bodies_that_do_not_come_are_timed_out() {
    let (child, addr, _stderr) =
        serve(&["from_http_server 0 header_timeout=300ms body_timeout=300ms | count"]);
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = [0; 64];
    let _ = slow.read(&mut buf); // closed by the server
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
        .unwrap();
    let mut reply = String::new();
    slow_body.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    kill(child.id(), "INT");
    let (out, _, status) = wait_within(child, Duration::from_secs(10));
    assert!(status.success());
    assert_eq!(out, "0\n");
}
