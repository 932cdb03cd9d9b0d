//! A real MQTT broker for tests: mosquitto, started on 127.0.0.1 on a free port.
//!
//! `mosquitto` is found through `STREAMZ_MOSQUITTO`, on `PATH` or in `/usr/sbin` (Debian's
//! `apt-get install mosquitto`). When it is missing, [`Mosquitto::start`] returns `None` so
//! that a test can skip, unless `STREAMZ_REQUIRE_MQTT=1`, where it panics (CI sets it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A mosquitto broker, stopped when dropped. Its sessions and queued messages persist
/// across [`restart`](Mosquitto::restart)s (written to its directory when it stops).
#[derive(Debug)]
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

fn find(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The `mosquitto` binary, if there is one.
pub fn mosquitto() -> Option<PathBuf> {
    find("mosquitto", "STREAMZ_MOSQUITTO")
}

impl Mosquitto {
    /// A broker that lets anyone in. `None` when there is no `mosquitto` (see the module's
    /// documentation).
    pub fn start() -> Option<Mosquitto> {
        Self::start_with(None)
    }

    /// A broker that lets in only `user` with `password`.
    pub fn start_with_password(user: &str, password: &str) -> Option<Mosquitto> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(credentials: Option<(&str, &str)>) -> Option<Mosquitto> {
        if mosquitto().is_none() {
            assert!(
                !std::env::var("STREAMZ_REQUIRE_MQTT").is_ok_and(|v| v == "1"),
                "STREAMZ_REQUIRE_MQTT=1 but there is no `mosquitto` (apt-get install mosquitto)"
            );
            eprintln!("skipped: no `mosquitto` (apt-get install mosquitto)");
            return None;
        }
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("streamz-mosquitto-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for mosquitto");
        // mosquitto started as root drops to its own user, which must write its log and
        // sessions here
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
        }
        let mut config = format!(
            "listener {port} 127.0.0.1\n\
             persistence true\n\
             persistence_location {}/\n\
             max_queued_messages 0\n\
             log_dest file {}/log\n\
             log_type all\n",
            dir.display(),
            dir.display()
        );
        match credentials {
            None => config.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.join("passwords");
                let status = Command::new(
                    find("mosquitto_passwd", "STREAMZ_MOSQUITTO_PASSWD")
                        .expect("mosquitto_passwd beside mosquitto"),
                )
                .args(["-b", "-c"])
                .arg(&file)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd runs");
                assert!(status.success(), "mosquitto_passwd failed");
                config.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        std::fs::write(dir.join("mosquitto.conf"), config).expect("mosquitto's config");
        let mut broker = Mosquitto {
            child: None,
            port,
            dir,
        };
        broker.spawn();
        Some(broker)
    }

    fn spawn(&mut self) {
        let child = Command::new(mosquitto().expect("checked"))
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listens(self.port) {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {} within 10 s; its log: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it (SIGTERM, so that it saves its sessions) and starts it again on the same
    /// port.
    pub fn restart(&mut self) {
        self.stop();
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

    /// Its directory (config, log, saved sessions).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Mosquitto {
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

/// Whether something listens on 127.0.0.1:`port`. A connection to itself does not count: a
/// client whose own port the kernel picks equal to the one it asks for (an ephemeral port
/// nobody listens on yet) is connected to itself, and would keep the server from binding.
fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}
