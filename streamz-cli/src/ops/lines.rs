//! Sources of lines: stdin, from_textfile, from_process. Each line is an element (a string,
//! or JSON with `json=true` or `--json`); a line too long or not UTF-8 is reported and
//! dropped (`crate::lines`).

use std::time::Duration;

use tokio::io::{AsyncSeekExt, BufReader};

use super::args::{Kind::*, opt, req};
use super::{Args, Build, OpSpec};
use crate::error::CliError;
use crate::graph::Runtime;
use crate::run::{LinePosition, feed_lines};
use crate::source::Source;

pub(super) static OPS: &[OpSpec] = &[
    OpSpec {
        name: "stdin",
        params: &[
            opt("json", Bool, "false"),
            opt("max_line", Count, "1048576"),
        ],
        about: "lines of standard input, as strings (as JSON with json=true or --json); a line over max_line bytes, or not UTF-8, is reported and dropped (--on-error)",
        build: Build::Source(stdin),
    },
    OpSpec {
        name: "from_textfile",
        params: &[
            req("path", Text),
            opt("from_end", Bool, "false"),
            opt("follow", Bool, "true"),
            opt("poll_interval", Duration, "100ms"),
            opt("json", Bool, "false"),
            opt("max_line", Count, "1048576"),
        ],
        about: "lines of a file, following it as it grows (like `tail -f`) until Ctrl-C unless follow=false; a line over max_line bytes, or not UTF-8, is reported and dropped",
        build: Build::Source(from_textfile),
    },
    OpSpec {
        name: "from_process",
        params: &[
            req("command", Text),
            opt("json", Bool, "false"),
            opt("max_line", Count, "1048576"),
        ],
        about: "lines a shell command writes to its standard output, until it exits; a line over max_line bytes, or not UTF-8, is reported and dropped",
        build: Build::Source(from_process),
    },
];

/// Whether lines are JSON: the stage's `json=`, or `--json`.
pub(super) fn json(args: &Args<'_>, rt: &Runtime) -> Result<bool, CliError> {
    Ok(args.flag("json")? || rt.json_input)
}

fn stdin(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let (json, max_line) = (json(args, rt)?, args.positive("max_line", 1 << 20)?);
    Ok(Source::new(None, move |stream, mut control| async move {
        let reader = BufReader::new(tokio::io::stdin());
        let start = LinePosition::default();
        feed_lines(
            &stream,
            reader,
            start,
            json,
            max_line,
            "stdin",
            None,
            &mut control,
        )
        .await
    }))
}

fn from_textfile(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let path = args.text("path").unwrap_or_default();
    let from_end = args.flag("from_end")?;
    let follow = args.flag("follow")?;
    let poll = args
        .interval("poll_interval")?
        .unwrap_or(Duration::from_millis(100));
    let (json, max_line) = (json(args, rt)?, args.positive("max_line", 1 << 20)?);
    Ok(Source::resumable(
        None,
        move |input, mut control| async move {
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("cannot open `{path}`: {e}"))?;
            let len = file
                .metadata()
                .await
                .map_err(|e| format!("cannot read `{path}`: {e}"))?
                .len();
            // a checkpointed run resumes after the last line its checkpoint covers
            let at = match input.resume() {
                Some(saved) => {
                    let at = LinePosition::from_value(&saved).ok_or_else(|| {
                    format!("the checkpoint's position in `{path}` is not one from_textfile saved: {saved}")
                })?;
                    if at.offset > len {
                        return Err(format!(
                            "`{path}` has {len} bytes, fewer than the {} the checkpointed run had read: \
                         it was truncated or replaced since",
                            at.offset
                        ));
                    }
                    at
                }
                None if from_end => LinePosition {
                    offset: len,
                    lines: 0,
                },
                None => LinePosition::default(),
            };
            file.seek(std::io::SeekFrom::Start(at.offset))
                .await
                .map_err(|e| e.to_string())?;
            let reader = BufReader::new(file);
            let follow = follow.then_some(poll);
            feed_lines(
                &input,
                reader,
                at,
                json,
                max_line,
                &path,
                follow,
                &mut control,
            )
            .await
        },
    ))
}

fn from_process(args: &Args<'_>, rt: &Runtime) -> Result<Source, CliError> {
    let command = args.text("command").unwrap_or_default();
    let (json, max_line) = (json(args, rt)?, args.positive("max_line", 1 << 20)?);
    Ok(Source::new(None, move |stream, mut control| async move {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start `{command}`: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let reader = BufReader::new(stdout);
        feed_lines(
            &stream,
            reader,
            LinePosition::default(),
            json,
            max_line,
            &command,
            None,
            &mut control,
        )
        .await?;
        if control.stopping() {
            let _ = child.kill().await;
        } else {
            let status = child.wait().await.map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("`{command}` exited with {status}"));
            }
        }
        Ok(())
    }))
}
