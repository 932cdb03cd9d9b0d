//! Errors the user can act on: a message, where in the pipeline text, and a hint.

use std::fmt;
use std::ops::Range;

/// An error in what the user gave: the command exits with status 2 after printing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CliError {
    pub(crate) message: String,
    /// Where in the pipeline text, to mark it under the line.
    pub(crate) span: Option<Range<usize>>,
    pub(crate) help: Option<String>,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            span: None,
            help: None,
        }
    }

    pub(crate) fn at(message: impl Into<String>, span: Range<usize>) -> Self {
        CliError {
            span: Some(span),
            ..CliError::new(message)
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The error as the user sees it, with the line of `src` it is about and a marker
    /// under the part at fault.
    pub(crate) fn render(&self, src: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        if let Some(span) = &self.span {
            let start = floor_char_boundary(src, span.start.min(src.len()));
            let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
            let line = &src[line_start..line_end];
            let end = floor_char_boundary(src, span.end.clamp(start, line_end));
            let line_no = src[..line_start].matches('\n').count() + 1;
            let gutter = if src.contains('\n') {
                format!("{line_no} | ")
            } else {
                "  | ".to_owned()
            };
            let pad = " ".repeat(gutter.chars().count() + src[line_start..start].chars().count());
            let width = src[start..end].chars().count().max(1);
            out.push_str(&format!("{gutter}{line}\n{pad}{}\n", "^".repeat(width)));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("help: {help}\n"));
        }
        out
    }
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The nearest of `names` to `wrong`, if one is near enough to be a likely typo.
pub(crate) fn nearest<'a>(
    wrong: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    names
        .into_iter()
        .map(|name| (strsim::damerau_levenshtein(wrong, name), name))
        .filter(|(distance, name)| *distance <= (name.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_span_under_its_line() {
        let src = "range 10 | mapp \"x\"";
        let text = CliError::at("unknown operator `mapp`", 11..15)
            .help("did you mean `map`?")
            .render(src);
        assert_eq!(
            text,
            "error: unknown operator `mapp`\n  | range 10 | mapp \"x\"\n               ^^^^\nhelp: did you mean `map`?\n"
        );
    }

    #[test]
    fn numbers_lines_in_a_file() {
        let src = "a = range 3\nb = a | mapp 1";
        let text = CliError::at("unknown", 20..24).render(src);
        assert!(
            text.contains("2 | b = a | mapp 1\n            ^^^^\n"),
            "{text}"
        );
    }

    #[test]
    fn suggests_near_names_only() {
        let names = ["map", "filter", "sliding_window"];
        assert_eq!(nearest("mapp", names), Some("map"));
        assert_eq!(nearest("slidingwindow", names), Some("sliding_window"));
        assert_eq!(nearest("frobnicate", names), None);
    }
}
