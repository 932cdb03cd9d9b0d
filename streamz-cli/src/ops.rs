//! The operator table: every stage the language knows, its parameters, and a line about it;
//! and binding a stage's words to those parameters.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::error::{CliError, nearest};
use crate::lex::Word;
use crate::parse::Stage;
use crate::script::Expr;

/// Where an operator may stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// First in a line: makes elements.
    Source,
    /// Anywhere after a source.
    Transform,
    /// Between `scatter` and `gather` (and `gather` itself).
    Pooled,
    /// Last in a line: consumes elements.
    Sink,
}

/// What a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An expression over `x`.
    Expr,
    /// An expression over `acc` and `x`.
    AccExpr,
    /// A whole number ≥ 0.
    Count,
    /// A whole number, possibly negative.
    Int,
    /// `true` or `false`.
    Bool,
    /// A human duration: `500ms`, `1s`, `2m`.
    Duration,
    /// Any JSON value (a bare word is a string).
    Json,
    /// Text: a path, a command, a glob.
    Text,
    /// A TCP port.
    Port,
    /// Names of other streams (the rest of the positional words).
    Names,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Expr => "EXPR(x)",
            Kind::AccExpr => "EXPR(acc, x)",
            Kind::Count => "N",
            Kind::Int => "INT",
            Kind::Bool => "true|false",
            Kind::Duration => "DURATION",
            Kind::Json => "JSON",
            Kind::Text => "TEXT",
            Kind::Port => "PORT",
            Kind::Names => "STREAM…",
        }
    }
}

/// One parameter of an operator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// May be given by position (in table order), not only as `name=value`.
    pub(crate) positional: bool,
    /// `None`: required. `Some("")`: optional without a default.
    pub(crate) default: Option<&'static str>,
}

const fn req(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        positional: true,
        default: None,
    }
}

const fn pos(name: &'static str, kind: Kind, default: &'static str) -> Param {
    Param {
        name,
        kind,
        positional: true,
        default: Some(default),
    }
}

const fn opt(name: &'static str, kind: Kind, default: &'static str) -> Param {
    Param {
        name,
        kind,
        positional: false,
        default: Some(default),
    }
}

/// One operator of the language.
#[derive(Debug)]
pub(crate) struct OpSpec {
    pub(crate) name: &'static str,
    pub(crate) role: Role,
    pub(crate) params: &'static [Param],
    pub(crate) about: &'static str,
}

use Kind::*;
use Role::*;

/// Every operator, in the order `streamz ops` lists them.
pub(crate) static OPS: &[OpSpec] = &[
    // sources
    OpSpec {
        name: "range",
        role: Source,
        params: &[
            req("start", Int),
            pos("end", Int, ""),
            pos("step", Int, "1"),
        ],
        about: "the integers from START (default 0) up to, not including, END, by STEP: `range 10`, `range 1 10 2`",
    },
    OpSpec {
        name: "values",
        role: Source,
        params: &[req("values", Json)],
        about: "the items of a JSON array: `values '[1, \"a\", {\"b\": 2}]'`",
    },
    OpSpec {
        name: "stdin",
        role: Source,
        params: &[
            opt("json", Bool, "false"),
            opt("max_line", Count, "1048576"),
        ],
        about: "lines of standard input, as strings (as JSON with json=true or --json); a line over max_line bytes, or not UTF-8, is reported and dropped (--on-error)",
    },
    OpSpec {
        name: "from_textfile",
        role: Source,
        params: &[
            req("path", Text),
            opt("from_end", Bool, "false"),
            opt("follow", Bool, "true"),
            opt("poll_interval", Duration, "100ms"),
            opt("json", Bool, "false"),
            opt("max_line", Count, "1048576"),
        ],
        about: "lines of a file, following it as it grows (like `tail -f`) until Ctrl-C unless follow=false; a line over max_line bytes, or not UTF-8, is reported and dropped",
    },
    OpSpec {
        name: "filenames",
        role: Source,
        params: &[
            req("glob", Text),
            opt("follow", Bool, "false"),
            opt("poll_interval", Duration, "1s"),
        ],
        about: "the paths matching a glob pattern; with follow=true, new ones as they appear",
    },
    OpSpec {
        name: "from_tcp",
        role: Source,
        params: &[
            req("port", Port),
            opt("host", Text, "127.0.0.1"),
            opt("max_line", Count, "65536"),
            opt("max_connections", Count, "512"),
            opt("json", Bool, "false"),
        ],
        about: "lines sent by TCP clients; a line over max_line bytes, or not UTF-8, is reported and dropped; clients past max_connections (or past the open-file limit) are refused while the others are served",
    },
    OpSpec {
        name: "from_http_server",
        role: Source,
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
    },
    OpSpec {
        name: "from_process",
        role: Source,
        params: &[
            req("command", Text),
            opt("json", Bool, "false"),
            opt("max_line", Count, "1048576"),
        ],
        about: "lines a shell command writes to its standard output, until it exits; a line over max_line bytes, or not UTF-8, is reported and dropped",
    },
    OpSpec {
        name: "from_periodic",
        role: Source,
        params: &[
            req("expr", Expr),
            opt("interval", Duration, "1s"),
            opt("limit", Count, ""),
        ],
        about: "the expression's value every interval (x counts 0, 1, 2, …), LIMIT times or until Ctrl-C",
    },
    // transforms
    OpSpec {
        name: "map",
        role: Transform,
        params: &[req("func", Expr)],
        about: "the expression's value for each element",
    },
    OpSpec {
        name: "filter",
        role: Transform,
        params: &[req("predicate", Expr)],
        about: "the elements for which the expression is true",
    },
    OpSpec {
        name: "remove",
        role: Transform,
        params: &[req("predicate", Expr)],
        about: "the elements for which the expression is false",
    },
    OpSpec {
        name: "accumulate",
        role: Transform,
        params: &[
            req("func", AccExpr),
            opt("start", Json, ""),
            opt("returns_state", Bool, "false"),
            opt("with_state", Bool, "false"),
        ],
        about: "a running fold: acc becomes the expression's value, which is emitted; with returns_state=true the expression gives [state, output]",
    },
    OpSpec {
        name: "sliding_window",
        role: Transform,
        params: &[req("n", Count), opt("return_partial", Bool, "true")],
        about: "the last N elements as an array, after each element",
    },
    OpSpec {
        name: "partition",
        role: Transform,
        params: &[
            req("n", Count),
            opt("timeout", Duration, ""),
            opt("key", Expr, ""),
        ],
        about: "arrays of N elements (per key, with key=); the remainder at end of stream or after timeout",
    },
    OpSpec {
        name: "unique",
        role: Transform,
        params: &[opt("maxsize", Count, ""), opt("key", Expr, "")],
        about: "elements not seen before (among the last maxsize, by key)",
    },
    OpSpec {
        name: "slice",
        role: Transform,
        params: &[
            pos("start", Count, "0"),
            pos("stop", Count, ""),
            pos("step", Count, "1"),
        ],
        about: "elements START to STOP, every STEP-th, as Python's itertools.islice",
    },
    OpSpec {
        name: "pluck",
        role: Transform,
        params: &[req("key", Json)],
        about: "a field of each element: an index of an array or a key of an object",
    },
    OpSpec {
        name: "flatten",
        role: Transform,
        params: &[],
        about: "the items of each array element, one by one",
    },
    OpSpec {
        name: "json",
        role: Transform,
        params: &[],
        about: "strings parsed as JSON (other elements pass as they are)",
    },
    OpSpec {
        name: "frequencies",
        role: Transform,
        params: &[],
        about: "after each element, an object counting each distinct element so far",
    },
    OpSpec {
        name: "rate_limit",
        role: Transform,
        params: &[req("interval", Duration)],
        about: "elements at least INTERVAL apart",
    },
    OpSpec {
        name: "delay",
        role: Transform,
        params: &[req("interval", Duration)],
        about: "every element, INTERVAL later",
    },
    OpSpec {
        name: "timed_window",
        role: Transform,
        params: &[req("interval", Duration)],
        about: "every INTERVAL, an array of the elements that came in it",
    },
    OpSpec {
        name: "buffer",
        role: Transform,
        params: &[req("n", Count)],
        about: "up to N elements queued before emit waits (backpressure)",
    },
    OpSpec {
        name: "latest",
        role: Transform,
        params: &[],
        about: "the newest element whenever downstream is ready, dropping older ones",
    },
    OpSpec {
        name: "union",
        role: Transform,
        params: &[req("streams", Names)],
        about: "the elements of this and the named streams, as they come",
    },
    OpSpec {
        name: "zip",
        role: Transform,
        params: &[req("streams", Names), opt("maxsize", Count, "10")],
        about: "arrays of one element from this and each named stream, in step",
    },
    OpSpec {
        name: "combine_latest",
        role: Transform,
        params: &[req("streams", Names)],
        about: "arrays of the latest element of this and each named stream, on any new one",
    },
    OpSpec {
        name: "zip_latest",
        role: Transform,
        params: &[req("streams", Names)],
        about: "arrays of each element of this stream with the latest of the named ones",
    },
    OpSpec {
        name: "scatter",
        role: Transform,
        params: &[],
        about: "send elements to the thread pool: the stages up to `gather` run there, in parallel (needs the rayon feature)",
    },
    // on the pool
    OpSpec {
        name: "gather",
        role: Pooled,
        params: &[opt("ordered", Bool, "true")],
        about: "back from the pool, in input order (ordered=false: as they finish)",
    },
    // sinks
    OpSpec {
        name: "sink",
        role: Sink,
        params: &[pos("to", Text, "stdout")],
        about: "write each element as one line of compact JSON to stdout, or drop it (null)",
    },
    OpSpec {
        name: "sink_to_textfile",
        role: Sink,
        params: &[req("path", Text), opt("append", Bool, "false")],
        about: "write each element as one line of compact JSON to a file",
    },
    OpSpec {
        name: "count",
        role: Sink,
        params: &[],
        about: "print how many elements arrived, at the end",
    },
];

/// The operator named by a stage, or an error suggesting the nearest name.
pub(crate) fn lookup(stage: &Stage) -> Result<&'static OpSpec, CliError> {
    let name = stage.op.text.as_str();
    OPS.iter().find(|op| op.name == name).ok_or_else(|| {
        let mut err = CliError::at(format!("unknown operator `{name}`"), stage.op.span.clone());
        err = match nearest(name, OPS.iter().map(|op| op.name)) {
            Some(near) => err.help(format!(
                "did you mean `{near}`? `streamz ops` lists every operator"
            )),
            None => err.help("`streamz ops` lists every operator"),
        };
        err
    })
}

/// A stage's words bound to its operator's parameters.
#[derive(Debug)]
pub(crate) struct Args<'s> {
    op: &'static OpSpec,
    stage: &'s Stage,
    given: HashMap<&'static str, Vec<&'s Word>>,
}

impl<'s> Args<'s> {
    /// Binds `stage`'s positional words and options to `op`'s parameters.
    pub(crate) fn bind(op: &'static OpSpec, stage: &'s Stage) -> Result<Self, CliError> {
        let mut given: HashMap<&'static str, Vec<&Word>> = HashMap::new();
        let mut positional = op.params.iter().filter(|p| p.positional);
        for word in &stage.positional {
            match positional.next() {
                Some(p) if p.kind == Names => {
                    given.entry(p.name).or_default().push(word);
                    // the rest are names too
                    for rest in stage.positional.iter().skip_while(|w| *w != word).skip(1) {
                        given.entry(p.name).or_default().push(rest);
                    }
                    break;
                }
                Some(p) => {
                    given.insert(p.name, vec![word]);
                }
                None => {
                    return Err(CliError::at(
                        format!("`{}` takes {}", op.name, takes(op)),
                        word.span.clone(),
                    )
                    .help(usage(op)));
                }
            }
        }
        for (key, value) in &stage.options {
            match op.params.iter().find(|p| p.name == key.text) {
                Some(p) if p.kind == Names => {
                    return Err(CliError::at(
                        format!("`{}` takes the names of streams by position", op.name),
                        key.span.start..value.span.end,
                    )
                    .help(format!("such as `{} a b`", op.name)));
                }
                Some(p) if given.contains_key(p.name) => {
                    return Err(CliError::at(
                        format!("`{}` is given twice", p.name),
                        key.span.start..value.span.end,
                    ));
                }
                Some(p) => {
                    given.insert(p.name, vec![value]);
                }
                None => {
                    let names = op.params.iter().map(|p| p.name);
                    let help = match nearest(&key.text, names) {
                        Some(near) => format!("did you mean `{near}`? {}", usage(op)),
                        None => usage(op),
                    };
                    return Err(CliError::at(
                        format!("`{}` has no option `{}`", op.name, key.text),
                        key.span.clone(),
                    )
                    .help(help));
                }
            }
        }
        for p in op.params {
            if p.default.is_none() && !given.contains_key(p.name) {
                // range's one required number is its end, as in Python
                let name = if op.name == "range" { "END" } else { p.name };
                return Err(CliError::at(
                    format!("`{}` needs {name} ({})", op.name, p.kind.describe()),
                    stage.span.clone(),
                )
                .help(usage(op)));
            }
        }
        Ok(Args { op, stage, given })
    }

    fn word(&self, name: &str) -> Option<&'s Word> {
        self.given.get(name).and_then(|w| w.first().copied())
    }

    fn default(&self, name: &str) -> Option<&'static str> {
        self.op
            .params
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.default)
            .filter(|d| !d.is_empty())
    }

    fn bad(&self, word: &Word, what: &str) -> CliError {
        CliError::at(format!("`{}` is not {what}", word.text), word.span.clone())
            .help(usage(self.op))
    }

    /// The raw text of a parameter (given or default).
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.word(name)
            .map(|w| w.text.clone())
            .or_else(|| self.default(name).map(str::to_owned))
    }

    pub(crate) fn expr(
        &self,
        name: &str,
        vars: &'static [&'static str],
    ) -> Result<Option<Expr>, CliError> {
        self.word(name).map(|w| Expr::compile(w, vars)).transpose()
    }

    pub(crate) fn count(&self, name: &str) -> Result<Option<usize>, CliError> {
        self.parsed(name, "a whole number ≥ 0", |s| s.parse::<usize>().ok())
    }

    /// A whole number from `min` to `max` (the parameter's default when not given).
    pub(crate) fn count_within(
        &self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<usize, CliError> {
        let n = self
            .count(name)?
            .or_else(|| self.default(name)?.parse().ok())
            .unwrap_or(min);
        if (min..=max).contains(&n) {
            return Ok(n);
        }
        let span = self
            .word(name)
            .map_or(self.stage.span.clone(), |w| w.span.clone());
        Err(CliError::at(format!("{name} must be from {min} to {max}"), span).help(usage(self.op)))
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, CliError> {
        self.parsed(name, "a whole number", |s| s.parse::<i64>().ok())
    }

    pub(crate) fn port(&self, name: &str) -> Result<Option<u16>, CliError> {
        self.parsed(name, "a TCP port (0 to 65535)", |s| s.parse::<u16>().ok())
    }

    pub(crate) fn flag(&self, name: &str) -> Result<bool, CliError> {
        Ok(self
            .parsed(name, "true or false", |s| match s {
                "true" | "yes" | "1" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => None,
            })?
            .unwrap_or(false))
    }

    pub(crate) fn duration(&self, name: &str) -> Result<Option<Duration>, CliError> {
        self.parsed(name, "a duration such as 500ms or 2s", |s| {
            humantime::parse_duration(s).ok()
        })
    }

    /// A duration longer than zero.
    pub(crate) fn interval(&self, name: &str) -> Result<Option<Duration>, CliError> {
        match self.duration(name)? {
            Some(d) if d.is_zero() => {
                let span = self
                    .word(name)
                    .map_or(self.stage.span.clone(), |w| w.span.clone());
                Err(
                    CliError::at(format!("{name} must be longer than zero"), span)
                        .help("such as 500ms or 1s"),
                )
            }
            other => Ok(other),
        }
    }

    /// A JSON value; a word that is not JSON is a string.
    pub(crate) fn json(&self, name: &str) -> Option<Value> {
        self.text(name)
            .map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s)))
    }

    /// A JSON value that must parse.
    pub(crate) fn strict_json(&self, name: &str) -> Result<Option<Value>, CliError> {
        match self.word(name) {
            None => Ok(self.json(name)),
            Some(w) => serde_json::from_str(&w.text).map(Some).map_err(|e| {
                let at = w.origin(offset_of(&w.text, e.line(), e.column()));
                CliError::at(format!("`{}` is not valid JSON: {e}", w.text), at..at + 1)
            }),
        }
    }

    /// The words of a `Names` parameter.
    pub(crate) fn names(&self, name: &str) -> Vec<&'s Word> {
        self.given.get(name).cloned().unwrap_or_default()
    }

    pub(crate) fn stage(&self) -> &'s Stage {
        self.stage
    }

    fn parsed<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, CliError> {
        match self.word(name) {
            Some(w) => parse(&w.text).map(Some).ok_or_else(|| self.bad(w, what)),
            None => Ok(self.default(name).and_then(&parse)),
        }
    }
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len().saturating_sub(1))
}

/// `range START [END] [STEP]`-style usage of an operator.
pub(crate) fn usage(op: &OpSpec) -> String {
    if op.name == "range" {
        // as Python's range: one number is the end
        return "usage: range [START] END [STEP]".to_owned();
    }
    let mut s = format!("usage: {}", op.name);
    for p in op.params {
        let arg = if p.positional {
            p.name.to_uppercase()
        } else {
            format!("{}={}", p.name, p.kind.describe())
        };
        if p.default.is_none() {
            s.push_str(&format!(" {arg}"));
        } else {
            s.push_str(&format!(" [{arg}]"));
        }
    }
    s
}

fn takes(op: &OpSpec) -> String {
    let n = op.params.iter().filter(|p| p.positional).count();
    match n {
        0 => "no positional arguments".to_owned(),
        1 => "one positional argument".to_owned(),
        n => format!("at most {n} positional arguments"),
    }
}

/// `streamz ops`: every operator with its parameters and what it does.
pub(crate) fn listing() -> String {
    let mut out = String::new();
    for (role, title) in [
        (Source, "Sources (first in a line)"),
        (Transform, "Operators"),
        (Pooled, "After scatter"),
        (
            Sink,
            "Sinks (last in a line; `sink stdout` when a line has none)",
        ),
    ] {
        out.push_str(title);
        out.push('\n');
        for op in OPS.iter().filter(|op| op.role == role) {
            let usage = usage(op);
            let usage = usage.trim_start_matches("usage: ");
            out.push_str(&format!("  {usage}\n      {}\n", op.about));
            for p in op
                .params
                .iter()
                .filter(|p| p.default.is_some_and(|d| !d.is_empty()))
                .filter(|_| op.name != "range")
            {
                out.push_str(&format!(
                    "      {}: default {}\n",
                    p.name,
                    p.default.unwrap_or_default()
                ));
            }
        }
        out.push('\n');
    }
    out.push_str(
        "Between scatter and gather: map, filter, remove, accumulate, flatten, buffer, rate_limit, delay.\n\
         Expressions are rhai over x (and acc): \"x + 1\", \"x % 2 == 0\", \"x.name\", \"[x, x * 2]\".\n\
         Durations: 500ms, 1s, 2m. Several streams: one `name = stages` line each (in a -f file, or\n\
         separated by `;`), then `zip a b`, `a | union b`, ….\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn bind(src: &str) -> Result<(), CliError> {
        let program = parse(src)?;
        let stage = &program.lines[0].stages[0];
        Args::bind(lookup(stage)?, stage).map(|_| ())
    }

    #[test]
    fn binding_checks_arguments() {
        assert!(bind("range 10").is_ok());
        assert!(bind("range 1 10 2").is_ok());
        assert!(
            bind("range 1 10 2 3")
                .unwrap_err()
                .message
                .contains("at most 3")
        );
        let err = bind("range").unwrap_err();
        assert_eq!(err.message, "`range` needs END (INT)");
        assert_eq!(err.help.unwrap(), "usage: range [START] END [STEP]");
        let err = bind("sliding_window 2 retrun_partial=false").unwrap_err();
        assert!(err.help.unwrap().contains("return_partial"));
        assert!(bind("zip a b c").is_ok());
        // found by the fuzz tests: names only by position
        let err = bind("union streams=a").unwrap_err();
        assert!(err.message.contains("by position"), "{err:?}");
        assert!(bind("mapp 1").unwrap_err().help.unwrap().contains("`map`"));
    }

    #[test]
    fn every_operator_is_listed() {
        let listing = listing();
        for op in OPS {
            assert!(listing.contains(op.about), "{}", op.name);
        }
    }
}
