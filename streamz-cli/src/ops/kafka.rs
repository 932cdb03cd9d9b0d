//! Kafka: from_kafka, from_kafka_batched, to_kafka (the `streamz-kafka` crate), at least once.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use streamz_core::{Sink, Stream};
use streamz_kafka::{ClientConfig, KafkaCheckpoint, OnFailure, Produce, Record, StartFrom};

use super::args::{Kind::*, opt, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::{Graph, PartitionFigures, Partitions, Runtime};
use crate::source::Source;

/// The options of both consumer stages, with a stage's own (`$own`) amid them.
macro_rules! consumer_params {
    ($($own:expr),* $(,)?) => {
        &[
            req("topic", Text),
            opt("brokers", Text, "127.0.0.1:9092"),
            opt("group", Text, "streamz"),
            opt("from", Text, "earliest"),
            opt("json", Bool, "false"),
            opt("meta", Bool, "false"),
            $($own,)*
            opt("session_timeout", Duration, "45s"),
            opt("connect_timeout", Duration, "10s"),
            opt("config", Text, ""),
        ]
    };
}

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "from_kafka",
        params: consumer_params![opt("max_in_flight", Count, "1000")],
        about: "records of TOPIC (several: a,b) read by consumer group `group`, each committed once it and all made from it is done (at least once); at most max_in_flight read and not committed; a partition new to the group starts at `from` (earliest|latest); a member that stops answering (killed) holds its partitions for session_timeout; `config` adds librdkafka settings (config=security.protocol=SSL,ssl.ca.location=ca.pem); each element is the record's value as text (json=true: parsed), or with meta=true an object of topic, partition, offset, key, timestamp and value; under --checkpoint, the offsets are in each checkpoint and committed once it is written, and a restart skips what the checkpoint counted",
        build: Build::Source(from_kafka),
    },
    OpSpec {
        name: "from_kafka_batched",
        params: consumer_params![
            opt("max_batch_size", Count, "10000"),
            opt("poll_interval", Duration, "1s"),
            opt("max_in_flight", Count, "100000"),
        ],
        about: "as from_kafka, but each poll_interval, for each partition with new records, one array of up to max_batch_size of them, committed when the array is done",
        build: Build::Source(from_kafka_batched),
    },
    OpSpec {
        name: "to_kafka",
        params: &[
            req("topic", Text),
            opt("brokers", Text, "127.0.0.1:9092"),
            opt("key", Expr, ""),
            opt("max_in_flight", Count, "1000"),
            opt("connect_timeout", Duration, "10s"),
            opt("config", Text, ""),
        ],
        about: "produce each element to TOPIC (a string as it is, anything else as compact JSON; keyed by `key` when given); an element is done when the broker has it, so from_kafka commits only what reached TOPIC; `config` adds librdkafka settings, as for from_kafka; at most max_in_flight deliveries awaited, then the pipeline waits",
        build: Build::Sink(to_kafka),
    },
];

/// What the consumer options of a `from_kafka` stage say.
struct Consumer {
    topics: Vec<String>,
    config: ClientConfig,
    start: StartFrom,
    meta: bool,
    json: bool,
    max_in_flight: usize,
    connect_timeout: Duration,
}

fn consumer(args: &Args<'_>, rt: &Runtime, max_in_flight: usize) -> Result<Consumer, CliError> {
    let topics = super::names_given(args, "topic")?;
    let start = match args.text("from").as_deref() {
        Some("earliest") | None => StartFrom::Earliest,
        Some("latest") => StartFrom::Latest,
        Some(other) => {
            return Err(CliError::at(
                format!("from={other}: a group starts from `earliest` or `latest`"),
                args.stage().span.clone(),
            ));
        }
    };
    let mut config = client_config(args)?;
    config.set("group.id", args.text("group").unwrap_or_default());
    if let Some(timeout) = args.interval("session_timeout")? {
        config.set("session.timeout.ms", timeout.as_millis().to_string());
        let heartbeat = (timeout / 10).max(Duration::from_millis(100));
        config.set("heartbeat.interval.ms", heartbeat.as_millis().to_string());
    }
    Ok(Consumer {
        topics,
        config,
        start,
        meta: args.flag("meta")?,
        json: super::lines::json(args, rt)?,
        max_in_flight: args.positive("max_in_flight", max_in_flight)?,
        connect_timeout: args
            .interval("connect_timeout")?
            .unwrap_or(Duration::from_secs(10)),
    })
}

/// `brokers` and the `config` option's librdkafka settings.
fn client_config(args: &Args<'_>) -> Result<ClientConfig, CliError> {
    let mut config = ClientConfig::new();
    config
        .set(
            "bootstrap.servers",
            args.text("brokers").unwrap_or_default(),
        )
        .set("client.id", "streamz");
    let settings = args.text("config").unwrap_or_default();
    for setting in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match setting.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                config.set(key.trim(), value.trim());
            }
            _ => {
                return Err(CliError::at(
                    format!("config: `{setting}` is not KEY=VALUE"),
                    args.stage().span.clone(),
                )
                .help("librdkafka settings, comma separated: config=security.protocol=SSL,ssl.ca.location=ca.pem"));
            }
        }
    }
    Ok(config)
}

/// A record as an element: its value, or (`meta`) an object with its coordinates.
fn element(record: Record, json: bool, meta: bool) -> Result<Value, String> {
    let v = super::payload_value(record.value.as_deref(), json)?;
    if !meta {
        return Ok(v);
    }
    Ok(json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key_str(),
        "timestamp": record.timestamp,
        "value": v,
    }))
}

fn from_kafka(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let c = consumer(args, rt, 1000)?;
    let partitions = rt.partitions.clone();
    let slot = Slot::default();
    let checkpoint = slot.clone();
    let source = Source::new(None, move |stream, control| async move {
        let (json, meta) = (c.json, c.meta);
        let built = build(c, &control, checkpoint.get().cloned(), move |builder| {
            builder.build_into(&stream, move |record| element(record, json, meta))
        })
        .await?;
        run(built, control, partitions).await
    });
    Ok(keeps_position(source, slot))
}

/// Where a consumer stage's checkpoint is, in a checkpointed run.
type Slot = Arc<OnceLock<KafkaCheckpoint>>;

/// In a checkpointed run (`--checkpoint`), the source's offsets are in the checkpoints and
/// its group is committed what they hold; it leaves the group once the last is saved.
fn keeps_position(source: Source, slot: Slot) -> Source {
    source.keeps_position(Box::new(move |builder, stream| {
        let checkpoint = KafkaCheckpoint::register(builder, stream);
        let _ = slot.set(checkpoint.clone());
        Box::new(move || checkpoint.leave_group())
    }))
}

fn from_kafka_batched(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let c = consumer(args, rt, 100_000)?;
    let max_batch_size = args.positive("max_batch_size", 10_000)?;
    let poll_interval = args
        .interval("poll_interval")?
        .unwrap_or(Duration::from_secs(1));
    let partitions = rt.partitions.clone();
    let slot = Slot::default();
    let checkpoint = slot.clone();
    let source = Source::new(None, move |stream, control| async move {
        let (json, meta) = (c.json, c.meta);
        let built = build(c, &control, checkpoint.get().cloned(), move |builder| {
            builder.batched(max_batch_size, poll_interval).build_into(
                &stream,
                move |batch: Vec<Record>| {
                    batch
                        .into_iter()
                        .map(|record| element(record, json, meta))
                        .collect::<Result<Vec<Value>, String>>()
                        .map(Value::Array)
                },
            )
        })
        .await?;
        run(built, control, partitions).await
    });
    Ok(keeps_position(source, slot))
}

type Built = streamz_kafka::KafkaSource<Value>;

/// Makes the source (connecting: off the runtime's threads), with the run's error policy.
async fn build<F>(
    c: Consumer,
    control: &crate::run::Control,
    checkpoint: Option<KafkaCheckpoint>,
    finish: F,
) -> Result<Built, String>
where
    F: FnOnce(streamz_kafka::FromKafka) -> Result<Built, streamz_core::StreamError>
        + Send
        + 'static,
{
    let hook = control.clone();
    let builder = streamz_kafka::from_kafka(c.topics, c.config)
        .start_from(c.start)
        .max_in_flight(c.max_in_flight)
        .connect_timeout(c.connect_timeout)
        .on_failure(if control.skips_errors() {
            OnFailure::Skip
        } else {
            OnFailure::Stop
        })
        .on_error(move |e| hook.element_failed(&e));
    let builder = match checkpoint {
        Some(checkpoint) => builder.checkpoint(checkpoint),
        None => builder,
    };
    super::connect("from_kafka", move || finish(builder)).await
}

/// Runs the source until it ends or the run stops; a record's failure was reported by the
/// run's error policy already.
async fn run(
    source: Built,
    control: crate::run::Control,
    partitions: Partitions,
) -> Result<(), String> {
    let stats = source.stats();
    let name = source.stream().name();
    let shown = name.clone();
    partitions.add(Arc::new(move || {
        stats
            .partitions()
            .into_iter()
            .map(|p| PartitionFigures {
                source: name.clone(),
                topic: p.topic,
                partition: p.partition,
                committed: p.committed,
                high_watermark: p.high_watermark,
                lag: p.lag,
            })
            .collect()
    }));
    let mut stopper = control.clone();
    let result = source
        .run_until(async move { stopper.stopped().await })
        .await;
    match result {
        Ok(summary) => {
            control.add_emitted(summary.records);
            if summary.skipped > 0 {
                eprintln!(
                    "streamz: {shown}: {} records read again were skipped: the checkpoint resumed from had counted them",
                    summary.skipped
                );
            }
            Ok(())
        }
        Err(_) if control.failing() => Ok(()),
        Err(e) => Err(e.message().to_owned()),
    }
}

/// What to_kafka produces of an element.
#[derive(Debug, Clone)]
struct Outgoing {
    key: Option<String>,
    value: String,
}

impl Produce for Outgoing {
    fn payload(&self) -> Option<&[u8]> {
        Some(self.value.as_bytes())
    }

    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref().map(str::as_bytes)
    }
}

fn to_kafka(args: &Args<'_>, s: &Stream<Value>, _: &mut Graph) -> Result<Sink, CliError> {
    let topic = args.text("topic").unwrap_or_default();
    let key = args.expr("key", &["x"])?;
    let config = client_config(args)?;
    let outgoing = s.try_map(move |x: Value| {
        let key = match &key {
            Some(expr) => Some(super::payload_text(
                &expr.eval(&[&x]).map_err(|e| super::failure(&x, e))?,
            )),
            None => None,
        };
        Ok::<_, String>(Outgoing {
            key,
            value: super::payload_text(&x),
        })
    });
    let delivered = streamz_kafka::to_kafka(topic, config)
        .max_in_flight(args.positive("max_in_flight", 1000)?)
        .connect_timeout(
            args.interval("connect_timeout")?
                .unwrap_or(Duration::from_secs(10)),
        )
        .attach(&outgoing)
        .map_err(|e| CliError::at(e.message().to_owned(), args.stage().span.clone()))?;
    Ok(delivered.sink(|_| {}))
}
