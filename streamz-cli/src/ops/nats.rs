//! NATS: from_nats, to_nats (the `streamz-nats` crate): core subjects at most once,
//! JetStream at least once. Options are named as the `nats` command names them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use streamz_core::{OnFailure, Sink, Stream};
use streamz_nats::{Message, NatsCheckpoint};

use super::args::{Kind::*, opt, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::{Graph, Runtime};
use crate::source::Source;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "from_nats",
        params: &[
            req("subject", Text),
            opt("server", Text, "nats://127.0.0.1:4222"),
            opt("stream", Text, ""),
            opt("durable", Text, ""),
            opt("create", Bool, "false"),
            opt("ack_wait", Duration, "30s"),
            opt("max_in_flight", Count, "100"),
            opt("queue", Text, ""),
            opt("json", Bool, "false"),
            opt("meta", Bool, "false"),
            opt("user", Text, ""),
            opt("password", Text, ""),
            opt("token", Text, ""),
            opt("creds", Text, ""),
            opt("tlsca", Text, ""),
            opt("connect_timeout", Duration, "10s"),
        ],
        about: "messages of SUBJECT (wildcards * and >; several: a,b) from the NATS server (`server`, else $NATS_URL, else 127.0.0.1:4222): core NATS (at most once; queue=GROUP shares them among a group's members), or with stream=NAME through a JetStream consumer of that stream, each message acknowledged once it and all made from it is done, at most max_in_flight unacknowledged; durable=NAME keeps the consumer's place on the server across runs, so what a killed run did not acknowledge comes again (after ack_wait); create=true makes the stream if it is missing; user/password, token, creds (a credentials file) and tlsca (a PEM file: TLS) for real servers; each element is the payload as text (json=true: parsed), or with meta=true an object of subject, sequence, delivered, headers and payload; under --checkpoint (JetStream only), the stream sequence is in each checkpoint, the consumer (made again from the checkpoint at each run) acknowledged what a written checkpoint holds",
        build: Build::Source(from_nats),
    },
    OpSpec {
        name: "to_nats",
        params: &[
            req("subject", Text),
            opt("server", Text, "nats://127.0.0.1:4222"),
            opt("stream", Text, ""),
            opt("create", Bool, "false"),
            opt("max_in_flight", Count, "100"),
            opt("timeout", Duration, "60s"),
            opt("user", Text, ""),
            opt("password", Text, ""),
            opt("token", Text, ""),
            opt("creds", Text, ""),
            opt("tlsca", Text, ""),
            opt("connect_timeout", Duration, "10s"),
        ],
        about: "publish each element to SUBJECT (a string as it is, anything else as compact JSON): core NATS (done once the client has it), or with stream=NAME through JetStream, an element done when that stream has stored it (sent again while not acknowledged, stored once, failing after timeout), so from_nats, from_mqtt or from_kafka upstream acknowledges only what was stored; create=true makes the stream if it is missing; at most max_in_flight awaited, then the pipeline waits",
        build: Build::Sink(to_nats),
    },
];

/// The options both stages share: where the server is and how to log in.
struct Login {
    server: String,
    user: Option<(String, String)>,
    token: Option<String>,
    creds: Option<String>,
    tlsca: Option<String>,
    connect_timeout: Duration,
}

fn login(args: &Args<'_>) -> Result<Login, CliError> {
    let given = |name: &str| args.text(name).filter(|v| !v.is_empty());
    let (user, password) = (given("user"), given("password"));
    if user.is_none() && password.is_some() {
        return Err(CliError::at(
            "a password without a user",
            args.stage().span.clone(),
        ));
    }
    // as the `nats` command: NATS_URL, when the stage names no server
    let server = match std::env::var("NATS_URL") {
        Ok(url) if !args.is_given("server") && !url.is_empty() => url,
        _ => args.text("server").unwrap_or_default(),
    };
    Ok(Login {
        server,
        user: user.map(|u| (u, password.unwrap_or_default())),
        token: given("token"),
        creds: given("creds"),
        tlsca: given("tlsca"),
        connect_timeout: args
            .interval("connect_timeout")?
            .unwrap_or(Duration::from_secs(10)),
    })
}

/// Applies the login options to a builder of either stage.
macro_rules! logged_in {
    ($builder:expr, $login:expr) => {{
        let mut builder = $builder.connection_timeout($login.connect_timeout);
        if let Some((user, password)) = $login.user {
            builder = builder.user_and_password(user, password);
        }
        if let Some(token) = $login.token {
            builder = builder.token(token);
        }
        if let Some(creds) = $login.creds {
            builder = builder.credentials_file(creds);
        }
        if let Some(tlsca) = $login.tlsca {
            builder = builder.add_root_certificates(tlsca);
        }
        builder
    }};
}

/// A message as an element: its payload, or (`meta`) an object with its subject and place.
fn element(message: Message, json: bool, meta: bool) -> Result<Value, String> {
    let payload = super::payload_value(Some(&message.payload), json)?;
    if !meta {
        return Ok(payload);
    }
    let headers: serde_json::Map<String, Value> = message
        .headers
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    Ok(json!({
        "subject": message.subject,
        "sequence": message.sequence,
        "delivered": message.delivered,
        "headers": headers,
        "payload": payload,
    }))
}

fn from_nats(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let subjects = super::names_given(args, "subject")?;
    let login = login(args)?;
    let given = |name: &str| args.text(name).filter(|v| !v.is_empty());
    let (stream_name, durable, queue) = (given("stream"), given("durable"), given("queue"));
    let span = args.stage().span.clone();
    if stream_name.is_none() {
        for (name, set) in [
            ("durable", durable.is_some()),
            ("create", args.flag("create")?),
            ("ack_wait", args.is_given("ack_wait")),
        ] {
            if set {
                return Err(CliError::at(
                    format!(
                        "{name} is for a JetStream consumer: give the stream too (stream=NAME)"
                    ),
                    span,
                ));
            }
        }
    } else if queue.is_some() {
        return Err(CliError::at(
            "queue is for core NATS: a JetStream consumer's messages are shared among the runs that read the same durable consumer",
            span,
        ));
    }
    let create = args.flag("create")?;
    let ack_wait = args
        .interval("ack_wait")?
        .unwrap_or(Duration::from_secs(30));
    let max_in_flight = args.positive("max_in_flight", 100)?;
    let (json, meta) = (super::lines::json(args, rt)?, args.flag("meta")?);
    let jetstream = stream_name.is_some();
    // in a checkpointed run (`--checkpoint`), a JetStream source's sequence is in the
    // checkpoints and its consumer is acknowledged what they hold
    let slot: Arc<OnceLock<NatsCheckpoint>> = Arc::default();
    let checkpoint = slot.clone();
    let source = Source::new(None, move |stream, control| async move {
        let hook = control.clone();
        let mut builder = logged_in!(streamz_nats::from_nats(login.server, subjects), login)
            .max_in_flight(max_in_flight)
            .on_failure(if control.skips_errors() {
                OnFailure::Skip
            } else {
                OnFailure::Stop
            })
            .on_error(move |e| hook.element_failed(&e));
        if let Some(group) = queue {
            builder = builder.queue_group(group);
        }
        if let Some(name) = stream_name {
            builder = builder
                .jetstream(name)
                .create_stream(create)
                .ack_wait(ack_wait);
            if let Some(durable) = durable {
                builder = builder.durable(durable);
            }
        }
        if let Some(checkpoint) = checkpoint.get() {
            builder = builder.checkpoint(checkpoint.clone());
        }
        let source = super::connect("from_nats", move || {
            builder.build_into(&stream, move |message| element(message, json, meta))
        })
        .await?;
        let mut stopper = control.clone();
        match source
            .run_until(async move { stopper.stopped().await })
            .await
        {
            Ok(summary) => {
                control.add_emitted(summary.messages);
                if summary.skipped > 0 {
                    eprintln!(
                        "streamz: from_nats: {} messages sent again were skipped: the checkpoint resumed from had counted them",
                        summary.skipped
                    );
                }
                if summary.dropped > 0 {
                    eprintln!(
                        "streamz: from_nats: the client dropped {} messages: the pipeline was slower than the publishers (core NATS keeps none; JetStream would: stream=NAME)",
                        summary.dropped
                    );
                }
                Ok(())
            }
            Err(_) if control.failing() => Ok(()),
            Err(e) => Err(e.message().to_owned()),
        }
    });
    if !jetstream {
        return Ok(source);
    }
    Ok(source.keeps_position(Box::new(move |builder, stream| {
        let checkpoint = NatsCheckpoint::register(builder, stream);
        let _ = slot.set(checkpoint.clone());
        Box::new(move || checkpoint.close())
    })))
}

fn to_nats(args: &Args<'_>, s: &Stream<Value>, _: &mut Graph) -> Result<Sink, CliError> {
    let subject = args.text("subject").unwrap_or_default();
    let login = login(args)?;
    let given = |name: &str| args.text(name).filter(|v| !v.is_empty());
    let create = args.flag("create")?;
    let stream_name = given("stream");
    if stream_name.is_none() && create {
        return Err(CliError::at(
            "create is for JetStream: give the stream too (stream=NAME)",
            args.stage().span.clone(),
        ));
    }
    let payloads = s.map(|x: Value| super::payload_text(&x));
    let mut sink = logged_in!(streamz_nats::to_nats(login.server, subject), login)
        .max_in_flight(args.positive("max_in_flight", 100)?)
        .timeout(args.interval("timeout")?.unwrap_or(Duration::from_secs(60)));
    if let Some(name) = stream_name {
        sink = sink.jetstream(name).create_stream(create);
    }
    let published = sink
        .attach(&payloads)
        .map_err(|e| CliError::at(e.message().to_owned(), args.stage().span.clone()))?;
    Ok(published.sink(|_| {}))
}
