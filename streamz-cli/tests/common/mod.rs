//! Helpers the binary's test files share (each file uses some).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Starts `streamz run EXTRA PIPELINE` in the background, its stderr piped.
pub(crate) fn spawn_run(pipeline: &str, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("streamz"))
        .arg("run")
        .args(extra)
        .arg(pipeline)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `signal` (`KILL`, `INT`, …) to `child`.
pub(crate) fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Stops a `streamz run` with SIGINT and checks that it drained and exited 0; its stderr.
pub(crate) fn interrupt(child: Child) -> String {
    signal(&child, "INT");
    let out = wait(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// Waits for `child` to exit, within `limit` (else kills it and panics).
pub(crate) fn wait(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("streamz did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// GETs `path` on `addr` over a fresh connection; the whole reply.
pub(crate) fn get(addr: &str, path: &str) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    reply
}

/// POSTs `body` to `path` on `addr` over a fresh connection; the whole reply.
pub(crate) fn post(addr: &str, path: &str, body: &str) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    write!(
        socket,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    reply
}

/// Starts `streamz ARGS` in the background and returns it with what its first line on stderr
/// says after `prefix` (an address).
pub(crate) fn spawn_announcing(
    args: &[&str],
    prefix: &str,
) -> (Child, String, BufReader<ChildStderr>) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("streamz"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let said = line
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, said, stderr)
}

// The kills' random moments, shared with the store's kill tests.
#[allow(unused_imports)] // each test binary uses some
pub(crate) use streamz_store::testing::{kill_at_progress, kill_seed, next_random};

/// The output of `accumulate "acc + 1" start=0 | partition 4 | sliding_window 2` over `n`
/// elements in a run never killed: the counts 1..=n in windows of two partitions of 4, as
/// compact JSON.
pub(crate) fn windows_of_counts(n: usize) -> Vec<String> {
    let parts: Vec<Vec<usize>> = (0..n / 4)
        .map(|k| (4 * k + 1..=4 * k + 4).collect())
        .collect();
    (0..parts.len())
        .map(|k| serde_json::to_string(&parts[k.saturating_sub(1)..=k]).expect("JSON"))
        .collect()
}

/// Checks that `seen` (each output, and how many times it came) holds every one of `want`
/// and nothing else (an element counted twice, or a count lost, would make another), and
/// returns how many came more than once.
pub(crate) fn repeats_of_exactly(
    want: &[String],
    seen: &std::collections::BTreeMap<String, usize>,
) -> usize {
    let wanted: std::collections::HashSet<&String> = want.iter().collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !seen.contains_key(*w))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "missing from the output: {missing:?}…");
    let extra: Vec<&String> = seen
        .keys()
        .filter(|w| !wanted.contains(w))
        .take(5)
        .collect();
    assert!(
        extra.is_empty(),
        "not in the output of a run never killed (an element counted twice, or a count lost): {extra:?}"
    );
    seen.values().map(|&k| k - 1).sum()
}
