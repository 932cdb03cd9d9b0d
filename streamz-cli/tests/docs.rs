//! docs/cli.md, streamz-cli/README.md, docs/delivery.md, docs/kafka.md, docs/mqtt.md, docs/nats.md and docs/websocket.md
//! stay true: each `$ command` of its `console` blocks is run by `sh` with this
//! build's `streamz` first on the PATH, and must print (stdout and stderr together, unless the
//! command redirects them) the lines that follow it.

use std::path::Path;
use std::process::Command;

/// (command, expected output) for every `$ ` line of the chapter's `console` blocks.
fn examples(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_console = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_console = line == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(command) => out.push((command.to_owned(), String::new())),
            None => {
                let (_, expected) = out.last_mut().expect("a console block starts with `$ `");
                expected.push_str(line);
                expected.push('\n');
            }
        }
    }
    out
}

/// Runs every example of `chapter` (at least `at_least` of them) and lists those whose output
/// differs from what the chapter says.
fn check_chapter(chapter: &str, at_least: usize) {
    check_chapter_with(chapter, at_least, &[]);
}

/// As `check_chapter`, with each `(from, to)` of `replace` replaced in the chapter first.
fn check_chapter_with(chapter: &str, at_least: usize, replace: &[(&str, &str)]) {
    check_chapter_in(chapter, at_least, replace, &[]);
}

/// As `check_chapter_with`, the commands run with the environment variables `env`.
fn check_chapter_in(
    chapter: &str,
    at_least: usize,
    replace: &[(&str, &str)],
    env: &[(&str, &str)],
) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut text = std::fs::read_to_string(root.join(chapter)).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let examples = examples(&text);
    assert!(examples.len() >= at_least, "{} examples", examples.len());
    let bin = Path::new(env!("CARGO_BIN_EXE_streamz")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for (command, expected) in &examples {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{{ {command}\n}} 2>&1"))
            .env("PATH", &path)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        if got != *expected {
            wrong.push(format!(
                "$ {command}\n--- the chapter says\n{expected}--- it prints\n{got}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{chapter} is out of date:\n\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_command_line_chapter_is_true() {
    check_chapter("docs/cli.md", 15);
}

#[test]
fn the_durable_state_chapter_is_true() {
    check_chapter("docs/durable-state.md", 6);
}

#[test]
fn the_crates_readme_is_true() {
    check_chapter("streamz-cli/README.md", 1);
}

#[test]
fn the_delivery_chapter_is_true() {
    check_chapter("docs/delivery.md", 6);
}

/// Its examples run against a broker started for the test, at the address the chapter names.
#[cfg(feature = "kafka")]
#[test]
fn the_kafka_chapter_is_true() {
    let Some(broker) = streamz_kafka::testing::Broker::start() else {
        return;
    };
    let address = broker.address();
    // the error example underlines a stage that holds the address
    let underline = |address: &str| "^".repeat("to_kafka nowhere brokers=".len() + address.len());
    check_chapter_with(
        "docs/kafka.md",
        6,
        &[
            (&underline("127.0.0.1:9092"), &underline(&address)),
            ("127.0.0.1:9092", &address),
            // a loaded machine may take longer than the chapter's seconds to join the group
            // (a CI run printed nothing in 4 s once); what is printed is the same
            (
                "timeout --preserve-status -s INT 3 ",
                "timeout --preserve-status -s INT 12 ",
            ),
            (
                "timeout --preserve-status -s INT 4 ",
                "timeout --preserve-status -s INT 12 ",
            ),
        ],
    );
}

/// Its examples run against a broker started for the test, at the port the chapter names.
#[cfg(feature = "mqtt")]
#[test]
fn the_mqtt_chapter_is_true() {
    let Some(broker) = streamz_mqtt::testing::Mosquitto::start() else {
        return;
    };
    let port = broker.port().to_string();
    check_chapter_with("docs/mqtt.md", 4, &[("port=1883", &format!("port={port}"))]);
}

/// Its examples run against a NATS server and an MQTT broker started for the test, at the
/// addresses the chapter names.
#[cfg(all(feature = "nats", feature = "mqtt"))]
#[test]
fn the_nats_chapter_is_true() {
    let Some(server) = streamz_nats::testing::NatsServer::start() else {
        return;
    };
    let Some(broker) = streamz_mqtt::testing::Mosquitto::start() else {
        return;
    };
    let port = broker.port().to_string();
    // the chapter's examples name no server: the default, which NATS_URL sets
    check_chapter_in(
        "docs/nats.md",
        8,
        &[("port=1883", &format!("port={port}"))],
        &[("NATS_URL", &server.url())],
    );
}

/// Its examples serve and connect to two free ports of this machine, for the chapter's 8765
/// and 8766.
#[cfg(feature = "websocket")]
#[test]
fn the_websocket_chapter_is_true() {
    let free = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port().to_string()
    };
    let (a, b) = (free(), free());
    check_chapter_with("docs/websocket.md", 6, &[("8765", &a), ("8766", &b)]);
}
