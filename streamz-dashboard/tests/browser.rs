//! The `/status` page in a real headless browser, driven over WebDriver, while a pipeline runs:
//! the graph's nodes are drawn with their names, the counts move, a node that holds elements is
//! highlighted, and a screenshot of it all is saved.
//!
//! It needs Chromium and ChromeDriver (on Debian: `apt-get install chromium chromium-driver`;
//! `CHROMIUM` and `CHROMEDRIVER` name other binaries). Without them the test says why on stderr
//! and passes, unless `STREAMZ_REQUIRE_BROWSER` is set, as `.ci/run` sets it after installing
//! both. The screenshot goes to `STREAMZ_SCREENSHOT`, or to `dashboard-status.png` in the
//! target directory's test scratch folder; the user guide's picture is that file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use streamz_core::Stream;
use streamz_dashboard::Dashboard;
use streamz_tokio::TokioExecutor;

/// A program from `var`, or the first of `names` on `PATH`.
fn program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The browser and its driver, or why the test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let chromium = program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    )
    .ok_or("no Chromium (set CHROMIUM, or apt-get install chromium)")?;
    let driver = program("CHROMEDRIVER", &["chromedriver"])
        .ok_or("no ChromeDriver (set CHROMEDRIVER, or apt-get install chromium-driver)")?;
    Ok((chromium, driver))
}

/// A running ChromeDriver, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(program: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {port} within 30 s",
                program.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    // the flags keep a headless Chromium, run as root on a machine without a network, from
    // reaching out (refused connections, many at a time) and from needing a sandbox
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,860",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("no WebDriver session from {}: {e}", driver.url))
}

/// Polls `read` until it gives `Some`, for at most `secs` seconds.
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut read: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = read().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn attr(client: &Client, selector: &str, name: &str) -> Option<String> {
    let element = client.find(Locator::Css(selector)).await.ok()?;
    element.attr(name).await.ok().flatten()
}

/// How many different colours a PNG has (a blank picture has one).
fn colours(png_bytes: &[u8]) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a PNG's size")];
    let info = reader.next_frame(&mut pixels).expect("a PNG's pixels");
    let channels = info.color_type.samples();
    let mut seen: Vec<&[u8]> = pixels[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| &p[..3.min(channels)])
        .collect();
    seen.sort_unstable();
    seen.dedup();
    (info.width, info.height, seen.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_draws_the_graph_and_its_counts_move() {
    let (chromium, driver_program) = match browser() {
        Ok(found) => found,
        Err(why) if std::env::var_os("STREAMZ_REQUIRE_BROWSER").is_none() => {
            // straight to stderr, past the test harness's capture, so the skip is seen
            let _ = writeln!(
                std::io::stderr(),
                "skipped the dashboard's browser test: {why}"
            );
            return;
        }
        Err(why) => panic!("STREAMZ_REQUIRE_BROWSER is set, but {why}"),
    };

    // numbers → rate_limit → double → (sliding window → sum → sink) and (buffer → slow write)
    let source = Stream::with_executor(TokioExecutor::current()).named("numbers");
    let doubled = source
        .rate_limit(Duration::from_millis(2))
        .map(|x: u64| x * 2)
        .named("double");
    let _sums = doubled
        .sliding_window(10, false)
        .map(|w| w.iter().sum::<u64>())
        .named("sum of 10")
        .sink(drop)
        .named("discard");
    let _writes = doubled
        .buffer(16)
        .sink_async(|_| tokio::time::sleep(Duration::from_millis(5)))
        .named("slow write");
    let dashboard = Dashboard::new()
        .watch(&source)
        .update_every(Duration::from_millis(100));
    let nodes: Vec<(u64, String, String)> = dashboard.figures()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_u64().unwrap(),
                n["name"].as_str().unwrap().to_owned(),
                n["operator"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let node_of = |operator: &str| {
        nodes
            .iter()
            .find(|(_, _, op)| op == operator)
            .unwrap_or_else(|| panic!("no {operator} node in {nodes:?}"))
            .0
    };
    let (map_id, buffer_id) = (node_of("map"), node_of("buffer"));
    let server = dashboard.clone().serve("127.0.0.1:0").await.unwrap();
    let feeder = tokio::spawn({
        let source = source.clone();
        async move {
            for x in 0.. {
                if source.emit(x).await.is_err() {
                    break;
                }
            }
        }
    });

    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let profile = scratch.join(format!("chromium-profile-{}", std::process::id()));
    let driver = Driver::start(&driver_program);
    let client = connect(&driver, &chromium, &profile).await;
    client.goto(&server.url()).await.unwrap();

    // every node is drawn, under its name
    for (id, name, _) in &nodes {
        let card = client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(&format!("#node-{id}")))
            .await
            .unwrap_or_else(|e| panic!("node {id} ({name}) is not drawn: {e}"));
        let drawn = card.find(Locator::Css(".name")).await.unwrap();
        assert_eq!(&drawn.text().await.unwrap(), name);
    }
    let rows = client
        .find_all(Locator::Css("#nodes tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), nodes.len(), "a table row per node");

    // the map's count moves on the page itself
    let map = format!("#node-{map_id}");
    let first: u64 = eventually("the map's count on the page", 30, || async {
        attr(&client, &map, "data-in").await?.parse().ok()
    })
    .await;
    let later: u64 = eventually("the map's count to move", 30, || async {
        let now: u64 = attr(&client, &map, "data-in").await?.parse().ok()?;
        (now > first).then_some(now)
    })
    .await;
    let counts = client
        .find(Locator::Css(&format!("{map} .counts")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        counts.starts_with("in "),
        "the card shows counts: {counts:?}"
    );
    assert_eq!(
        client
            .find(Locator::Id("connection"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "live"
    );

    // the buffer before the slow write holds elements, and is drawn so
    let buffer = format!("#node-{buffer_id}");
    eventually("the buffer to be drawn as busy", 30, || async {
        let class = attr(&client, &buffer, "class").await?;
        class.split(' ').any(|c| c == "busy").then_some(())
    })
    .await;

    // the whole graph is inside the window, so the screenshot shows it
    let viewport = client
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let (width, height) = (viewport[0].as_f64().unwrap(), viewport[1].as_f64().unwrap());
    for (id, name, _) in &nodes {
        let card = client
            .find(Locator::Css(&format!("#node-{id}")))
            .await
            .unwrap();
        let (x, y, w, h) = card.rectangle().await.unwrap();
        assert!(
            w > 50.0 && x >= 0.0 && y >= 0.0 && x + w <= width && y + h <= height,
            "{name} is drawn at ({x}, {y}) size {w}×{h}, outside the {width}×{height} window"
        );
    }
    let graph = client.find(Locator::Id("graph")).await.unwrap();
    let (_, _, graph_colours) = colours(&graph.screenshot().await.unwrap());
    assert!(
        graph_colours > 16,
        "the graph's picture has {graph_colours} colours: it looks blank"
    );
    let picture = client.screenshot().await.unwrap();
    let (w, h, _) = colours(&picture);
    assert!(w >= 800 && h >= 600, "a {w}×{h} screenshot");
    let path = std::env::var_os("STREAMZ_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.join("dashboard-status.png"));
    std::fs::write(&path, &picture).unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "the dashboard's browser test: screenshot of {} (map count {first} → {later}) in {}",
        server.url(),
        path.display()
    );

    client.close().await.unwrap();
    drop(driver);
    feeder.abort();
    let _ = std::fs::remove_dir_all(&profile);
}
