//! A real Redis server for tests: redis-server on 127.0.0.1 on a free port, its data in a
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
