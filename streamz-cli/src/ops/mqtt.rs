//! MQTT: from_mqtt, to_mqtt (the `streamz-mqtt` crate), at least once at QoS 1.

use std::time::Duration;

use serde_json::{Value, json};
use streamz_core::{OnFailure, Sink, Stream};
use streamz_mqtt::{Message, QoS};

use super::args::{Kind::*, opt, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::{Graph, Runtime};
use crate::source::Source;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "from_mqtt",
        params: &[
            req("topic", Text),
            opt("host", Text, "127.0.0.1"),
            opt("port", Port, "1883"),
            opt("qos", Int, "1"),
            opt("client_id", Text, ""),
            opt("json", Bool, "false"),
            opt("meta", Bool, "false"),
            opt("max_in_flight", Count, "100"),
            opt("username", Text, ""),
            opt("password", Text, ""),
            opt("ca", Text, ""),
            opt("keep_alive", Duration, "30s"),
            opt("connect_timeout", Duration, "10s"),
        ],
        about: "messages of TOPIC (filters with + and #; several: a,b) from the MQTT broker at host:port (MQTT 5); at qos=1 each is acknowledged only once it and all made from it is done, in order, at most max_in_flight unacknowledged; with client_id the session is persistent: what is not acknowledged when the run dies comes again when it is back; username/password and ca (a PEM file: TLS) for real brokers; each element is the payload as text (json=true: parsed), or with meta=true an object of topic, qos, retain and payload",
        build: Build::Source(from_mqtt),
    },
    OpSpec {
        name: "to_mqtt",
        params: &[
            req("topic", Text),
            opt("host", Text, "127.0.0.1"),
            opt("port", Port, "1883"),
            opt("qos", Int, "1"),
            opt("retain", Bool, "false"),
            opt("max_in_flight", Count, "100"),
            opt("username", Text, ""),
            opt("password", Text, ""),
            opt("ca", Text, ""),
            opt("connect_timeout", Duration, "10s"),
        ],
        about: "publish each element to TOPIC (a string as it is, anything else as compact JSON); at qos=1 an element is done when the broker has acknowledged it, so from_mqtt or from_kafka upstream acknowledges only what reached TOPIC; at most max_in_flight awaited, then the pipeline waits",
        build: Build::Sink(to_mqtt),
    },
];

fn qos(args: &Args<'_>) -> Result<QoS, CliError> {
    match args.int("qos")? {
        Some(0) => Ok(QoS::AtMostOnce),
        Some(1) | None => Ok(QoS::AtLeastOnce),
        Some(other) => Err(CliError::at(
            format!("qos={other}: MQTT's QoS here is 0 or 1"),
            args.stage().span.clone(),
        )),
    }
}

/// The options both stages share: where the broker is and how to log in.
struct Login {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    ca: Option<String>,
    connect_timeout: Duration,
}

fn login(args: &Args<'_>) -> Result<Login, CliError> {
    let (user, password) = (
        args.text("username").unwrap_or_default(),
        args.text("password").unwrap_or_default(),
    );
    if user.is_empty() && !password.is_empty() {
        return Err(CliError::at(
            "a password without a username",
            args.stage().span.clone(),
        ));
    }
    Ok(Login {
        host: args.text("host").unwrap_or_default(),
        port: args.port("port")?.unwrap_or(1883),
        credentials: (!user.is_empty()).then_some((user, password)),
        ca: args.text("ca").filter(|c| !c.is_empty()),
        connect_timeout: args
            .interval("connect_timeout")?
            .unwrap_or(Duration::from_secs(10)),
    })
}

/// A message as an element: its payload, or (`meta`) an object with its topic and flags.
fn element(message: Message, json: bool, meta: bool) -> Result<Value, String> {
    let payload = super::payload_value(Some(&message.payload), json)?;
    if !meta {
        return Ok(payload);
    }
    Ok(json!({
        "topic": message.topic,
        "qos": match message.qos { QoS::AtMostOnce => 0, QoS::AtLeastOnce => 1 },
        "retain": message.retain,
        "payload": payload,
    }))
}

fn from_mqtt(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let topics = super::names_given(args, "topic")?;
    let login = login(args)?;
    let qos = qos(args)?;
    let client_id = args.text("client_id").filter(|c| !c.is_empty());
    let (json, meta) = (super::lines::json(args, rt)?, args.flag("meta")?);
    let max_in_flight = args.positive("max_in_flight", 100)?;
    let keep_alive = args
        .interval("keep_alive")?
        .unwrap_or(Duration::from_secs(30));
    Ok(Source::new(None, move |stream, control| async move {
        let hook = control.clone();
        let mut builder = streamz_mqtt::from_mqtt(login.host, login.port, topics)
            .qos(qos)
            .max_in_flight(max_in_flight)
            .keep_alive(keep_alive)
            .connect_timeout(login.connect_timeout)
            .on_failure(if control.skips_errors() {
                OnFailure::Skip
            } else {
                OnFailure::Stop
            })
            .on_error(move |e| hook.element_failed(&e));
        if let Some(id) = client_id {
            builder = builder.client_id(id);
        }
        if let Some((user, password)) = login.credentials {
            builder = builder.credentials(user, password);
        }
        if let Some(ca) = login.ca {
            builder = builder.tls_ca(ca);
        }
        let source = super::connect("from_mqtt", move || {
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
                Ok(())
            }
            Err(_) if control.failing() => Ok(()),
            Err(e) => Err(e.message().to_owned()),
        }
    }))
}

fn to_mqtt(args: &Args<'_>, s: &Stream<Value>, _: &mut Graph) -> Result<Sink, CliError> {
    let topic = args.text("topic").unwrap_or_default();
    let login = login(args)?;
    let payloads = s.map(|x: Value| super::payload_text(&x));
    let mut sink = streamz_mqtt::to_mqtt(login.host, login.port, topic)
        .qos(qos(args)?)
        .retain(args.flag("retain")?)
        .max_in_flight(args.positive("max_in_flight", 100)?)
        .connect_timeout(login.connect_timeout);
    if let Some((user, password)) = login.credentials {
        sink = sink.credentials(user, password);
    }
    if let Some(ca) = login.ca {
        sink = sink.tls_ca(ca);
    }
    let published = sink
        .attach(&payloads)
        .map_err(|e| CliError::at(e.message().to_owned(), args.stage().span.clone()))?;
    Ok(published.sink(|_| {}))
}
