//! What an operator's parameters take, and binding a stage's words to them.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::OpSpec;
use crate::error::{CliError, nearest};
use crate::lex::Word;
use crate::parse::Stage;
use crate::script::Expr;

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
    pub(crate) fn describe(self) -> &'static str {
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

pub(crate) const fn req(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        positional: true,
        default: None,
    }
}

pub(crate) const fn pos(name: &'static str, kind: Kind, default: &'static str) -> Param {
    Param {
        name,
        kind,
        positional: true,
        default: Some(default),
    }
}

pub(crate) const fn opt(name: &'static str, kind: Kind, default: &'static str) -> Param {
    Param {
        name,
        kind,
        positional: false,
        default: Some(default),
    }
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
                Some(p) if p.kind == Kind::Names => {
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
                Some(p) if p.kind == Kind::Names => {
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

    /// Whether the stage gives the parameter (rather than leaving it to its default).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn is_given(&self, name: &str) -> bool {
        self.word(name).is_some()
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
        if let Some(word) = self.word(name) {
            return Expr::compile(word, vars).map(Some);
        }
        // a default expression (`window`'s `agg=acc + 1`), placed at the stage for messages
        match self.default(name).filter(|d| !d.is_empty()) {
            Some(text) => {
                let span = self.stage.span.clone();
                let word = Word {
                    text: text.to_owned(),
                    origins: vec![span.start; text.chars().count()],
                    span,
                    equals: None,
                };
                Expr::compile(&word, vars).map(Some)
            }
            None => Ok(None),
        }
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

    /// A whole number ≥ 1: the given one, or `default`.
    pub(crate) fn positive(&self, name: &str, default: usize) -> Result<usize, CliError> {
        let value = self.count(name)?.unwrap_or(default);
        if value == 0 {
            let span = self
                .word(name)
                .map_or(self.stage.span.clone(), |w| w.span.clone());
            return Err(CliError::at(format!("{name} must be at least 1"), span));
        }
        Ok(value)
    }

    /// A required whole number ≥ 1.
    pub(crate) fn required_positive(&self, name: &str) -> Result<usize, CliError> {
        self.positive(name, 0)
    }

    /// A flag whose default is `default`.
    pub(crate) fn flag_or(&self, name: &str, default: bool) -> Result<bool, CliError> {
        match self.text(name) {
            Some(_) => self.flag(name),
            None => Ok(default),
        }
    }

    /// A required expression over `vars`.
    pub(crate) fn required_expr(
        &self,
        name: &str,
        vars: &'static [&'static str],
    ) -> Result<Expr, CliError> {
        self.expr(name, vars)?.ok_or_else(|| self.missing(name))
    }

    /// A required duration.
    pub(crate) fn required_duration(&self, name: &str) -> Result<Duration, CliError> {
        self.duration(name)?.ok_or_else(|| self.missing(name))
    }

    /// A required duration longer than zero.
    pub(crate) fn required_interval(&self, name: &str) -> Result<Duration, CliError> {
        self.interval(name)?.ok_or_else(|| self.missing(name))
    }

    /// A required parameter that is not there (`bind` checks this first, so only a table
    /// entry that marks it optional gets here).
    fn missing(&self, name: &str) -> CliError {
        CliError::at(
            format!("`{}` needs {name}", self.op.name),
            self.stage.span.clone(),
        )
        .help(usage(self.op))
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
