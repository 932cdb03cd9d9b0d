//! The pipeline language's structure: lines of stages.
//!
//! ```text
//! program := line (("\n" | ";") line)*
//! line    := [NAME "="] stage ("|" stage)*
//! stage   := OPERATOR arg*
//! arg     := WORD | KEY "=" WORD
//! ```
//!
//! What the operators and their arguments mean is checked when the graph is built
//! (`build.rs`), against the operator table (`ops.rs`).

use std::ops::Range;

use crate::error::CliError;
use crate::lex::{Token, Word, tokens};

/// A whole pipeline: one or more lines, each a named stream.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub(crate) lines: Vec<Line>,
}

/// `name = stage | stage | …`
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) name: Option<Word>,
    pub(crate) stages: Vec<Stage>,
}

/// `operator arg… key=value…`
#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub(crate) op: Word,
    pub(crate) positional: Vec<Word>,
    /// `(key, value)`; the key word's text is the key alone.
    pub(crate) options: Vec<(Word, Word)>,
    pub(crate) span: Range<usize>,
}

impl Stage {
    /// The stage as written, for messages and node names.
    pub(crate) fn text<'a>(&self, src: &'a str) -> &'a str {
        src.get(self.span.clone()).unwrap_or("").trim()
    }
}

/// Parses pipeline text.
pub(crate) fn parse(src: &str) -> Result<Program, CliError> {
    let mut lines = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    for token in tokens(src)?.into_iter().chain([Token::EndOfLine]) {
        if token == Token::EndOfLine {
            if !current.is_empty() {
                lines.push(line(std::mem::take(&mut current), src)?);
            }
        } else {
            current.push(token);
        }
    }
    if lines.is_empty() {
        return Err(CliError::new("the pipeline is empty")
            .help("a pipeline is stages joined by `|`, such as `range 10 | map \"x + 1\"`"));
    }
    Ok(Program { lines })
}

fn line(mut tokens: Vec<Token>, src: &str) -> Result<Line, CliError> {
    // `name = …`: a word, then a lone `=` (the lexer makes `name=…` one option word).
    let mut name = None;
    if let [Token::Word(first), Token::Word(eq), ..] = tokens.as_slice()
        && eq.text == "="
        && eq.equals.is_none()
    {
        if !is_identifier(&first.text) {
            return Err(CliError::at(
                format!("`{}` cannot name a stream", first.text),
                first.span.clone(),
            )
            .help("stream names are letters, digits and `_`, not starting with a digit"));
        }
        name = Some(first.clone());
        tokens.drain(..2);
    } else if let [Token::Word(first), ..] = tokens.as_slice()
        && let Some(key) = first.key()
        && first.text.len() == key.len() + 1
        && is_identifier(key)
    {
        // `name= range 3`
        let mut word = first.clone();
        word.text = key.to_owned();
        word.span = first.span.start..first.span.start + key.len();
        word.equals = None;
        name = Some(word);
        tokens.remove(0);
    }
    let mut stages = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut pipe_at = name.as_ref().map_or(0, |n: &Word| n.span.end);
    for token in tokens.into_iter().chain([Token::Pipe(usize::MAX)]) {
        match token {
            Token::Word(w) => words.push(w),
            Token::Pipe(at) => {
                if words.is_empty() {
                    let at = if at == usize::MAX { pipe_at } else { at };
                    return Err(CliError::at(
                        "a stage is missing: `|` must have a stage on each side",
                        at..at + 1,
                    ));
                }
                stages.push(stage(std::mem::take(&mut words), src)?);
                pipe_at = at;
            }
            Token::EndOfLine => unreachable!("lines are split before"),
        }
    }
    Ok(Line { name, stages })
}

fn stage(words: Vec<Word>, _src: &str) -> Result<Stage, CliError> {
    let mut words = words.into_iter();
    let op = words.next().expect("a stage has a word");
    if op.equals.is_some() || !is_identifier(&op.text) {
        return Err(CliError::at(
            format!("`{}` is not an operator name", op.text),
            op.span.clone(),
        )
        .help("each stage starts with an operator, such as `map` or `sliding_window`; `streamz ops` lists them"));
    }
    let mut span = op.span.clone();
    let mut positional = Vec::new();
    let mut options: Vec<(Word, Word)> = Vec::new();
    for word in words {
        span.end = word.span.end;
        match (word.key(), word.value()) {
            (Some(key), Some(value)) => {
                if let Some((earlier, _)) = options.iter().find(|(k, _)| k.text == key) {
                    return Err(
                        CliError::at(format!("`{key}` is given twice"), word.span.clone())
                            .help(format!("the first is at column {}", earlier.span.start + 1)),
                    );
                }
                let mut key_word = word.clone();
                key_word.text = key.to_owned();
                key_word.span = word.span.start..word.span.start + key.len();
                key_word.equals = None;
                options.push((key_word, value));
            }
            _ => {
                if !options.is_empty() {
                    return Err(CliError::at(
                        format!("`{}` comes after an option", word.text),
                        word.span.clone(),
                    )
                    .help("put positional arguments before `key=value` options"));
                }
                positional.push(word);
            }
        }
    }
    Ok(Stage {
        op,
        positional,
        options,
        span,
    })
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_line_pipeline() {
        let src = r#"range 10 | accumulate "acc + x" start=0 | sink stdout"#;
        let program = parse(src).unwrap();
        assert_eq!(program.lines.len(), 1);
        let stages = &program.lines[0].stages;
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[1].op.text, "accumulate");
        assert_eq!(stages[1].positional[0].text, "acc + x");
        assert_eq!(stages[1].options[0].0.text, "start");
        assert_eq!(stages[1].options[0].1.text, "0");
        assert_eq!(stages[1].text(src), r#"accumulate "acc + x" start=0"#);
    }

    #[test]
    fn named_lines() {
        let program = parse("a = range 3\nb= values [1]\nzip a b").unwrap();
        let names: Vec<_> = program
            .lines
            .iter()
            .map(|l| l.name.as_ref().map(|n| n.text.clone()))
            .collect();
        assert_eq!(names, [Some("a".into()), Some("b".into()), None]);
    }

    #[test]
    fn errors_point_at_the_fault() {
        let err = parse("range 3 | | sink stdout").unwrap_err();
        assert_eq!(err.span, Some(10..11));
        let err = parse("range 3 | map n=1 \"x\"").unwrap_err();
        assert!(err.message.contains("after an option"), "{err:?}");
        let err = parse("range 3 | map \"x\" n=1 n=2").unwrap_err();
        assert!(err.message.contains("twice"), "{err:?}");
        assert!(parse("  \n # nothing\n").is_err());
        assert!(parse("range 3 |").is_err());
        assert!(parse("\"a b\" 1").is_err());
    }
}
