//! Helpers the binary's test files share.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};

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
