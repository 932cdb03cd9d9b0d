//! A real NATS server for tests: nats-server with JetStream, on 127.0.0.1 on a free port.
//!
//! `nats-server` is found through `STREAMZ_NATS_SERVER`, on `PATH` or in `/usr/sbin`
//! (Debian's `apt-get install nats-server`). When it is missing, [`NatsServer::start`]
//! returns `None` so that a test can skip, unless `STREAMZ_REQUIRE_NATS=1`, where it panics
//! (CI sets it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A nats-server with JetStream on, stopped when dropped. Its streams and consumers are
/// kept in its directory, so they outlive a [`restart`](NatsServer::restart).
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    login: Vec<String>,
    restarts: usize,
}

/// The `nats-server` binary, if there is one.
pub fn nats_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STREAMZ_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

impl NatsServer {
    /// A server that lets anyone in. `None` when there is no `nats-server` (see the
    /// module's documentation).
    pub fn start() -> Option<NatsServer> {
        Self::start_with(Vec::new())
    }

    /// A server that lets in only `user` with `password`.
    pub fn start_with_password(user: &str, password: &str) -> Option<NatsServer> {
        Self::start_with(vec![
            "--user".into(),
            user.into(),
            "--pass".into(),
            password.into(),
        ])
    }

    fn start_with(login: Vec<String>) -> Option<NatsServer> {
        if nats_server().is_none() {
            assert!(
                !std::env::var("STREAMZ_REQUIRE_NATS").is_ok_and(|v| v == "1"),
                "STREAMZ_REQUIRE_NATS=1 but there is no `nats-server` (apt-get install nats-server)"
            );
            eprintln!("skipped: no `nats-server` (apt-get install nats-server)");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("streamz-nats-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for nats-server");
        let mut server = NatsServer {
            child: None,
            port,
            dir,
            login,
            restarts: 0,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let log = self.dir.join("log");
        let child = Command::new(nats_server().expect("checked"))
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .arg("-l")
            .arg(&log)
            .args(&self.login)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        // ready when JetStream is: the log says so after the listener is up
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = std::fs::read_to_string(&log)
                .is_ok_and(|l| l.matches("Server is ready").count() > self.starts());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server was not ready on {} within 20 s; its log: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times it was ready before (its log is appended to).
    fn starts(&self) -> usize {
        self.restarts
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGTERM) and starts it again on the same port, with its streams.
    pub fn restart(&mut self) {
        self.stop();
        self.restarts += 1;
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Its directory (log, JetStream's store).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
