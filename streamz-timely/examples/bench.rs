//! Throughput and per-element overhead of `scatter → map → buffer(n) → gather` across two
//! processes on this machine, for several window sizes: a bigger window lets more elements
//! travel in one batch.
//!
//! ```text
//! cargo run --release -p streamz-timely --example bench
//! ```
//!
//! Without cluster arguments it runs one process (`-n 1`, the in-process cost), then starts a
//! cluster of two processes itself (on two free ports of 127.0.0.1), and prints process 0's
//! tables; with them (`-n 2 -p 0 -h HOSTFILE`, …) it is one process of that cluster. `--json`
//! prints one JSON object a line instead of a table.
//!
//! The local graph runs on a rayon [`Pool`] of one thread: an executor whose futures need no
//! runtime context, so `emit_blocking` polls on the calling thread instead of handing every
//! element to a runtime thread (with a background tokio runtime, that hand-off is most of the
//! cost: about 11 µs an element here).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use streamz_core::Stream;
use streamz_rayon::Pool;
use streamz_timely::{Cluster, ScatterExt};

/// (window, elements): enough elements for each to take a second or so.
const RUNS: [(usize, u64); 5] = [
    (1, 3_000),
    (8, 20_000),
    (64, 100_000),
    (512, 200_000),
    (4096, 200_000),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "-n") {
        return launch(&args);
    }
    let json = args.iter().any(|a| a == "--json");
    let cluster = Cluster::from_args(args.into_iter().filter(|a| a != "--json"))?;
    let executor = Pool::new(1)?;
    if cluster.is_leader() && !json {
        println!(
            "{} processes × {} worker: scatter → map(x + 1) → buffer(n) → gather",
            cluster.processes(),
            cluster.workers()
        );
        println!(
            "{:>8} {:>10} {:>10} {:>14} {:>12}",
            "window", "elements", "seconds", "elements/s", "µs/element"
        );
    }
    for (window, n) in RUNS {
        // every process builds every pipeline, in the same order
        let source = Stream::with_executor(executor.clone());
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let _sink = source
            .scatter(&cluster)
            .map(|x: u64| x + 1)
            .buffer(window)
            .gather()
            .sink(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            });
        if !cluster.is_leader() {
            continue;
        }
        let started = Instant::now();
        for x in 0..n {
            source.emit_blocking(x)?;
        }
        futures_executor::block_on(source.flush());
        let took = started.elapsed().as_secs_f64();
        assert_eq!(seen.load(Ordering::Relaxed), n);
        let per_second = n as f64 / took;
        let micros = took * 1e6 / n as f64;
        if json {
            println!(
                "{{\"processes\":{},\"window\":{window},\"elements\":{n},\"seconds\":{took:.4},\"per_second\":{per_second:.0},\"us_per_element\":{micros:.3}}}",
                cluster.processes()
            );
        } else {
            println!("{window:>8} {n:>10} {took:>10.3} {per_second:>14.0} {micros:>12.2}");
        }
    }
    cluster.finish()?;
    Ok(())
}

/// Starts the two processes of a cluster on free ports and waits for them.
fn launch(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let ports: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let hosts: Vec<String> = ports
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()?;
    drop(ports);
    let hostfile =
        std::env::temp_dir().join(format!("streamz-timely-bench-{}", std::process::id()));
    std::fs::write(&hostfile, hosts.join("\n"))?;
    let me = std::env::current_exe()?;
    let alone = Command::new(&me)
        .args(&args[1..])
        .args(["-n", "1"])
        .status()?;
    if !alone.success() {
        return Err(format!("the one-process run ended with {alone}").into());
    }
    println!();
    let spawn = |process: usize| {
        Command::new(&me)
            .args(&args[1..])
            .args(["-n", "2", "-p", &process.to_string(), "-h"])
            .arg(&hostfile)
            .stdout(if process == 0 {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
    };
    let mut follower = spawn(1)?;
    let leader = spawn(0)?.wait()?;
    let follower = follower.wait()?;
    let _ = std::fs::remove_file(&hostfile);
    if !leader.success() || !follower.success() {
        return Err(format!("the processes ended with {leader} and {follower}").into());
    }
    Ok(())
}
