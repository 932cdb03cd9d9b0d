//! Network sources: from_tcp, from_http_server (served by `crate::net`).

use std::time::Duration;

use super::args::{Kind::*, opt, req};
use super::lines::json;
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::Runtime;
use crate::net::HttpLimits;
use crate::source::Source;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "from_tcp",
        params: &[
            req("port", Port),
            opt("host", Text, "127.0.0.1"),
            opt("max_line", Count, "65536"),
            opt("max_connections", Count, "512"),
            opt("json", Bool, "false"),
        ],
        about: "lines sent by TCP clients; a line over max_line bytes, or not UTF-8, is reported and dropped; clients past max_connections (or past the open-file limit) are refused while the others are served",
        build: Build::Source(from_tcp),
    },
    OpSpec {
        name: "from_http_server",
        params: &[
            req("port", Port),
            opt("host", Text, "127.0.0.1"),
            opt("path", Text, "/"),
            opt("max_body", Count, "1048576"),
            opt("max_requests", Count, "64"),
            opt("max_connections", Count, "512"),
            opt("header_timeout", Duration, "10s"),
            opt("body_timeout", Duration, "30s"),
            opt("grace", Duration, "5s"),
            opt("json", Bool, "false"),
        ],
        about: "bodies POSTed to http://HOST:PORT/PATH; the reply waits for the pipeline (backpressure); over max_body: 413. At most max_requests are read at once (memory ≈ max_requests × max_body, 64 MiB by default), the rest wait; headers must come within header_timeout, a body within body_timeout (408); after a stop, requests still being sent get `grace`",
        build: Build::Source(from_http_server),
    },
];

fn from_tcp(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let host = args.text("host").unwrap_or_default();
    let port = args.port("port")?.unwrap_or(0);
    let max_line = args.positive("max_line", 65536)?;
    let max_connections = args.positive("max_connections", 512)?;
    let json = json(args, rt)?;
    Ok(Source::new(None, move |stream, control| async move {
        crate::net::tcp(
            &stream,
            &host,
            port,
            max_line,
            max_connections,
            json,
            control,
        )
        .await
    }))
}

fn from_http_server(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let host = args.text("host").unwrap_or_default();
    let port = args.port("port")?.unwrap_or(0);
    let path = http_path(args)?;
    let json = json(args, rt)?;
    let limits = HttpLimits {
        max_body: args.count_within("max_body", 1, 1 << 30)?,
        max_requests: args.count_within("max_requests", 1, 1 << 16)?,
        max_connections: args.count_within("max_connections", 1, 1 << 20)?,
        header_timeout: args
            .interval("header_timeout")?
            .unwrap_or(Duration::from_secs(10)),
        body_timeout: args
            .interval("body_timeout")?
            .unwrap_or(Duration::from_secs(30)),
        grace: args.duration("grace")?.unwrap_or(Duration::from_secs(5)),
    };
    Ok(Source::new(None, move |stream, control| async move {
        crate::net::http(&stream, &host, port, &path, json, limits, control).await
    }))
}

/// `from_http_server`'s path: refused when the pipeline is read, not when the server starts.
fn http_path(args: &Args<'_>) -> Result<String, CliError> {
    let path = args.text("path").unwrap_or_else(|| "/".into());
    let fine = path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()+,;=@".contains(c));
    if fine {
        return Ok(path);
    }
    let span = args
        .stage()
        .options
        .iter()
        .find(|(k, _)| k.text == "path")
        .map_or(args.stage().span.clone(), |(_, v)| v.span.clone());
    Err(
        CliError::at(format!("path `{path}` is not a plain URL path"), span).help(
            "it starts with `/` and has no wildcards or captures (`*`, `:`, `{}`): path=/ingest",
        ),
    )
}
