//! Test support for checkpoints: the random moments of kill-and-restart tests
//! ([`kill_seed`], [`kill_at_progress`]), and a real Redis server.
//!
//! The Redis server:  redis-server on 127.0.0.1 on a free port, its data in a
//! directory of its own, appended to its log and fsynced on every write (`appendfsync
//! always`), so that it survives a [`restart`](RedisServer::restart).
//!
//! `redis-server` is found on `PATH` or in `/usr/bin` (Debian's `apt-get install
//! redis-server`). When it is missing, [`RedisServer::start`] returns `None` so that a test
//! can skip, unless `STREAMZ_REQUIRE_REDIS=1`, where it panics (CI sets it).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server, stopped when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// The `redis-server` binary, if there is one.
pub fn redis_server() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/bin".into());
    dirs.into_iter()
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

impl RedisServer {
    /// A server on a free port; `None` when there is no `redis-server` (see the module's
    /// documentation).
    pub fn start() -> Option<RedisServer> {
        if redis_server().is_none() {
            assert!(
                !std::env::var("STREAMZ_REQUIRE_REDIS").is_ok_and(|v| v == "1"),
                "STREAMZ_REQUIRE_REDIS=1 but there is no `redis-server` (apt-get install redis-server)"
            );
            eprintln!("skipped: no `redis-server` (apt-get install redis-server)");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("streamz-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new(redis_server().expect("checked"))
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--logfile", "log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers a PING.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut socket) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        // a connection to oneself (an ephemeral port) is not the server
        if socket.local_addr().is_ok_and(|a| a.port() == self.port) {
            return false;
        }
        let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        socket.write_all(b"PING\r\n").is_ok()
            && socket.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Its URL: `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (SIGKILL) and starts it again on the same port, with what it had written.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills it (SIGKILL), leaving it stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`stop`](RedisServer::stop).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Its log, for messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The seed of a kill-and-restart test's random moments: `STREAMZ_KILL_SEED`, to repeat a
/// run, or the clock.
pub fn kill_seed() -> u64 {
    std::env::var("STREAMZ_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970");
            now.as_nanos() as u64
        })
        .max(1)
}

/// The next of a xorshift sequence (for the kills' moments; `state` is never 0).
pub fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Kills `child` (SIGKILL) at the `kill`-th (from 0) of the twenty kills of a run whose
/// output goes from 0 to `len`, as `progress` reads it: every fifth soon after startup, the
/// others a few milliseconds after the output passes a random point further on each time, so
/// that twenty fit in one pass however fast the machine. Panics if `child` ends first.
pub fn kill_at_progress(
    child: &mut Child,
    kill: u64,
    len: u64,
    random: &mut u64,
    mut progress: impl FnMut() -> u64,
) {
    if kill % 5 == 4 {
        std::thread::sleep(Duration::from_millis(next_random(random) % 30));
    } else {
        let step = len / 22;
        let target = (kill + 1) * step + next_random(random) % step;
        while progress() < target && child.try_wait().expect("a child").is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(next_random(random) % 20));
    }
    assert!(
        child.try_wait().expect("a child").is_none(),
        "the run ended before its kill number {}",
        kill + 1
    );
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("a child");
    assert!(status.code().is_none(), "not killed: {status:?}");
}
