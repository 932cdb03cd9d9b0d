//! The `kafka` scenario: `from_kafka → map(upper) → to_kafka` through a local tansu broker,
//! this crate's pipeline and, given the original's Python, `bench/python/i_kafka.py`'s, each
//! timed the same way from outside: this process fills the input topic, reads the output
//! topic with a consumer of its own and times the records' arrivals.
//!
//! - Throughput: `n` records are put in the input topic first; the figure is the records
//!   that arrive in the output topic per second, from the first arrival to the last (so a
//!   group's join time is left out), within a cap of [`THROUGHPUT_CAP`] from the first.
//! - Latency: with the pipeline running and idle, [`LATENCY_RECORDS`] records are produced
//!   [`LATENCY_GAP`] apart; each one's latency is from its `produce` here to its arrival in
//!   the output topic, as seen by the same consumer.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use streamz_kafka::testing::Broker;
use streamz_kafka::{Record, from_kafka, to_kafka};
use streamz_tokio::TokioExecutor;

/// How long after the first arrival the throughput run may take.
pub(crate) const THROUGHPUT_CAP: Duration = Duration::from_secs(20);
/// How many records the latency run times.
pub(crate) const LATENCY_RECORDS: usize = 20;
/// The gap between them.
pub(crate) const LATENCY_GAP: Duration = Duration::from_millis(500);
/// How long a pipeline may take to deliver its first record (a group's join included).
const FIRST_ARRIVAL: Duration = Duration::from_secs(60);

/// A pipeline under test, running until dropped.
enum Pipeline {
    Rust {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    Python(Child),
}

impl Pipeline {
    fn start(which: &str, python: Option<&Path>, brokers: &str, input: &str, output: &str) -> Self {
        let group = format!("bench-{input}");
        match which {
            "rust" => {
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let (brokers, input, output) =
                    (brokers.to_owned(), input.to_owned(), output.to_owned());
                let thread = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    runtime.block_on(async move {
                        let mut consumer = ClientConfig::new();
                        consumer
                            .set("bootstrap.servers", &brokers)
                            .set("group.id", &group)
                            .set("fetch.wait.max.ms", "10");
                        let mut producer = ClientConfig::new();
                        producer.set("bootstrap.servers", &brokers);
                        let source = from_kafka([input.as_str()], consumer)
                            .executor(TokioExecutor::current())
                            .build()
                            .expect("the source");
                        let upper = source.stream().map(|r: Record| {
                            r.value.map(|v| v.to_ascii_uppercase()).unwrap_or_default()
                        });
                        to_kafka(&output, producer)
                            .attach(&upper)
                            .expect("the sink");
                        source
                            .run_until(async {
                                let _ = stopped.await;
                            })
                            .await
                            .expect("the pipeline runs");
                    });
                });
                Pipeline::Rust {
                    stop: Some(stop),
                    thread: Some(thread),
                }
            }
            mode => {
                let python = python.expect("a Python for the original");
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/python/i_kafka.py");
                let mode = mode
                    .strip_prefix("python_")
                    .expect("python_record or python_batched");
                let child = Command::new(python)
                    .arg(script)
                    .args([brokers, input, output, &group, mode])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("the original's pipeline starts");
                Pipeline::Python(child)
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        match self {
            Pipeline::Rust { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            Pipeline::Python(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Reads `topic` (partition 0) from its beginning on a thread, sending each record's value
/// and arrival time, until dropped.
struct Reader {
    arrivals: mpsc::Receiver<(Vec<u8>, Instant)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn new(brokers: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "bench-reader")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("a consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("a partition");
        consumer.assign(&tpl).expect("assign");
        let (send, arrivals) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                    let at = Instant::now();
                    let value = message.payload().unwrap_or_default().to_vec();
                    if send.send((value, at)).is_err() {
                        return;
                    }
                }
            }
        });
        Reader {
            arrivals,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn throughput(broker: &Broker, which: &str, python: Option<&Path>, n: u64) -> Value {
    let (input, output) = (
        format!("throughput-in-{which}"),
        format!("throughput-out-{which}"),
    );
    broker.create_topic(&input, 1);
    broker.create_topic(&output, 1);
    let filled = Instant::now();
    broker.produce(&input, (0..n).map(|i| format!("record {i}")));
    eprintln!("      {n} records in {:?}", filled.elapsed());
    let reader = Reader::new(&broker.address(), &output);
    let started = Instant::now();
    let _pipeline = Pipeline::start(which, python, &broker.address(), &input, &output);
    let Ok((_, first)) = reader.arrivals.recv_timeout(FIRST_ARRIVAL) else {
        return json!({"error": format!("nothing arrived within {FIRST_ARRIVAL:?}")});
    };
    eprintln!("      the first arrived after {:?}", started.elapsed());
    let (mut count, mut last) = (1u64, first);
    while count < n {
        let left = THROUGHPUT_CAP.saturating_sub(first.elapsed());
        match reader.arrivals.recv_timeout(left) {
            Ok((_, at)) => {
                count += 1;
                last = at;
            }
            Err(_) => break,
        }
    }
    let seconds = (last - first).as_secs_f64();
    json!({
        "records": count,
        "seconds": round(seconds, 3),
        "records_per_s": if seconds > 0.0 { round((count - 1) as f64 / seconds, 1) } else { 0.0 },
    })
}

fn latency(broker: &Broker, which: &str, python: Option<&Path>) -> Value {
    let (input, output) = (
        format!("latency-in-{which}"),
        format!("latency-out-{which}"),
    );
    broker.create_topic(&input, 1);
    broker.create_topic(&output, 1);
    let reader = Reader::new(&broker.address(), &output);
    let _pipeline = Pipeline::start(which, python, &broker.address(), &input, &output);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("linger.ms", "0")
        .create()
        .expect("a producer");
    let send = |value: &str| {
        producer
            .send(BaseRecord::<(), _>::to(&input).payload(value))
            .map_err(|(e, _)| e)
            .expect("queued");
    };
    // warm up until the pipeline has joined its group and delivers
    let deadline = Instant::now() + FIRST_ARRIVAL;
    loop {
        send("warm");
        if reader
            .arrivals
            .recv_timeout(Duration::from_millis(200))
            .is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            return json!({"error": format!("nothing arrived within {FIRST_ARRIVAL:?}")});
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    while reader.arrivals.try_recv().is_ok() {}
    let mut sent = HashMap::new();
    let mut got = Vec::new();
    for i in 0..LATENCY_RECORDS {
        let value = format!("latency {i}");
        sent.insert(value.clone(), Instant::now());
        send(&value);
        let next = Instant::now() + LATENCY_GAP;
        while let Ok((value, at)) = reader
            .arrivals
            .recv_timeout(next.saturating_duration_since(Instant::now()))
        {
            take(&mut got, &sent, &value, at);
        }
    }
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < LATENCY_RECORDS {
        match reader
            .arrivals
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            Ok((value, at)) => take(&mut got, &sent, &value, at),
            Err(_) => break,
        }
    }
    let _ = producer.flush(Duration::from_secs(1));
    got.sort_by(f64::total_cmp);
    json!({
        "records": got.len(),
        "median_ms": got.get(got.len() / 2).map(|x| round(*x, 2)),
        "max_ms": got.last().map(|x| round(*x, 2)),
        "min_ms": got.first().map(|x| round(*x, 2)),
    })
}

/// The scenario: `n` records for throughput; the original too when `python` is given.
pub(crate) fn kafka(n: u64, python: Option<&Path>) -> Value {
    let Some(broker) = Broker::start() else {
        return json!({"scenario": "kafka", "skipped": "no tansu on PATH"});
    };
    let mut which = vec!["rust"];
    if python.is_some() {
        which.extend(["python_record", "python_batched"]);
    }
    let mut out = serde_json::Map::new();
    out.insert("scenario".into(), "kafka".into());
    out.insert("n".into(), n.into());
    for w in which {
        eprintln!("    kafka: {w}");
        let t = throughput(&broker, w, python, n);
        let l = latency(&broker, w, python);
        out.insert(w.into(), json!({"throughput": t, "latency": l}));
    }
    Value::Object(out)
}

/// Adds the latency of `value`, arrived `at`, if it is one of those `sent` (the pipeline
/// upper-cases it).
fn take(got: &mut Vec<f64>, sent: &HashMap<String, Instant>, value: &[u8], at: Instant) {
    if let Some(start) = sent.get(&String::from_utf8_lossy(value).to_lowercase()) {
        got.push((at - *start).as_secs_f64() * 1e3);
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}
