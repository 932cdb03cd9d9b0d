//! Websockets: from_websocket, to_websocket (the `streamz-websocket` crate), each a server
//! (given a port) or a client (given a ws:// URL).

use std::time::Duration;

use serde_json::{Value, json};
use streamz_core::{Sink, Stream};
use streamz_websocket::{Message, SlowClient};

use super::args::{Kind::*, opt, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::{Graph, Runtime};
use crate::source::Source;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "from_websocket",
        params: &[
            req("address", Text),
            opt("host", Text, "127.0.0.1"),
            opt("max_connections", Count, "512"),
            opt("max_message", Count, "1048576"),
            opt("max_in_flight", Count, "100"),
            opt("json", Bool, "false"),
            opt("meta", Bool, "false"),
            opt("connect_timeout", Duration, "10s"),
        ],
        about: "messages sent over websockets: given a PORT, a server on host:PORT (the original's from_websocket; port 0 picks one, printed on stderr as `listening on ADDR`) whose clients' messages are the elements, at most max_connections clients, a message over max_message bytes closing its connection; given a ws:// URL, a client of that server, connecting again when it drops; a client is read only while the pipeline has room (at most max_in_flight waiting); each element is the message as text (json=true: parsed), or with meta=true an object of peer, text (whether it was a text message) and payload",
        build: Build::Source(from_websocket),
    },
    OpSpec {
        name: "to_websocket",
        params: &[
            req("address", Text),
            opt("host", Text, "127.0.0.1"),
            opt("client_buffer", Count, "1000"),
            opt("slow", Text, "drop"),
            opt("max_connections", Count, "512"),
            opt("max_in_flight", Count, "100"),
            opt("timeout", Duration, "30s"),
            opt("connect_timeout", Duration, "10s"),
        ],
        about: "send each element over websockets (a string as it is, anything else as compact JSON, as text messages): given a ws:// URL, as a client of that server (the original's to_websocket), an element done once written, sent again on a new connection when one drops, failing once the connection has been down for timeout; given a PORT, as a server on host:PORT (printed on stderr as `to_websocket: listening on ADDR`) to every connected client, each with a queue of client_buffer messages: a client whose queue is full is disconnected (slow=drop) or waited for (slow=wait)",
        build: Build::Sink(to_websocket),
    },
];

/// A stage's address: a port to serve on, or a URL to connect to.
enum Address {
    Serve(String),
    Connect(String),
}

fn address(args: &Args<'_>) -> Result<Address, CliError> {
    let given = args.text("address").unwrap_or_default();
    if given.contains("://") {
        return Ok(Address::Connect(given));
    }
    match given.parse::<u16>() {
        Ok(port) => Ok(Address::Serve(format!(
            "{}:{port}",
            args.text("host").unwrap_or_default()
        ))),
        Err(_) => Err(CliError::at(
            format!(
                "{}: `{given}` is neither a port to serve on (0 to 65535) nor a URL to connect to (ws://host:port/path)",
                args.stage().op.text
            ),
            args.stage().span.clone(),
        )),
    }
}

/// A message as an element: its payload, or (`meta`) an object with its peer.
fn element(message: Message, json: bool, meta: bool) -> Result<Value, String> {
    let payload = super::payload_value(Some(&message.payload), json)?;
    if !meta {
        return Ok(payload);
    }
    Ok(json!({
        "peer": message.peer.to_string(),
        "text": message.is_text,
        "payload": payload,
    }))
}

fn from_websocket(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let address = address(args)?;
    let max_connections = args.count_within("max_connections", 1, 1 << 20)?;
    let max_message = args.count_within("max_message", 1, 1 << 30)?;
    let max_in_flight = args.positive("max_in_flight", 100)?;
    let connect_timeout = args
        .interval("connect_timeout")?
        .unwrap_or(Duration::from_secs(10));
    let (json, meta) = (super::lines::json(args, rt)?, args.flag("meta")?);
    Ok(Source::new(None, move |stream, control| async move {
        let serving = matches!(address, Address::Serve(_));
        let builder = match address {
            Address::Serve(addr) => streamz_websocket::from_websocket(addr),
            Address::Connect(url) => streamz_websocket::from_websocket_url(url),
        }
        .max_connections(max_connections)
        .max_message_size(max_message)
        .max_in_flight(max_in_flight)
        .connect_timeout(connect_timeout);
        let hook = control.clone();
        let builder = builder.on_error(move |e| hook.element_failed(&e));
        let source = super::connect("from_websocket", move || {
            builder.build_into(&stream, move |message| element(message, json, meta))
        })
        .await?;
        if serving {
            eprintln!("listening on {}", source.local_addr());
        }
        let mut stopper = control.clone();
        let summary = source
            .run_until(async move { stopper.stopped().await })
            .await
            .map_err(|e| e.message().to_owned())?;
        control.add_emitted(summary.messages);
        if summary.refused > 0 {
            eprintln!(
                "warning: from_websocket: {} clients turned away (over max_connections)",
                summary.refused
            );
        }
        Ok(())
    }))
}

fn to_websocket(args: &Args<'_>, s: &Stream<Value>, _: &mut Graph) -> Result<Sink, CliError> {
    let address = address(args)?;
    let span = args.stage().span.clone();
    let failed = |e: streamz_core::StreamError| CliError::at(e.message().to_owned(), span.clone());
    let payloads = s.map(|x: Value| super::payload_text(&x));
    let sent = match address {
        Address::Connect(url) => streamz_websocket::to_websocket(url)
            .max_in_flight(args.positive("max_in_flight", 100)?)
            .timeout(args.interval("timeout")?.unwrap_or(Duration::from_secs(30)))
            .connect_timeout(
                args.interval("connect_timeout")?
                    .unwrap_or(Duration::from_secs(10)),
            )
            .attach(&payloads)
            .map_err(failed)?,
        Address::Serve(addr) => {
            let slow = match args.text("slow").as_deref() {
                Some("drop") | None => SlowClient::Drop,
                Some("wait") => SlowClient::Wait,
                Some(other) => {
                    return Err(CliError::at(
                        format!(
                            "to_websocket: slow={other}: a slow client is dropped (slow=drop) or waited for (slow=wait)"
                        ),
                        args.stage().span.clone(),
                    ));
                }
            };
            let server = streamz_websocket::to_websocket_server(addr)
                .client_buffer(args.count_within("client_buffer", 1, 1 << 20)?)
                .max_connections(args.count_within("max_connections", 1, 1 << 20)?)
                .slow_client(slow)
                .bind()
                .map_err(failed)?;
            eprintln!("to_websocket: listening on {}", server.local_addr());
            server.attach(&payloads)
        }
    };
    Ok(sent.sink(|_| {}))
}
