//! Splitting pipeline text into words, shell style, keeping where each word came from.
//!
//! Words are separated by blanks; `'…'` quotes literally, `"…"` quotes with backslash
//! escapes (`\"`, `\\`, `\n`, `\t`); `|` outside quotes ends a stage, and a newline or `;`
//! ends a line. `#` at the start of a word starts a comment to the end of the line. Unlike a
//! shell, a word keeps track of whether it was quoted, so `"a=b"` stays one positional word
//! while `a=b` is an option.

use std::ops::Range;

use crate::error::CliError;

/// A word of pipeline text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word with quotes removed and escapes applied.
    pub(crate) text: String,
    /// Where it is in the pipeline text, quotes included.
    pub(crate) span: Range<usize>,
    /// Where each character of `text` came from in the pipeline text, to place an
    /// expression's error under it.
    pub(crate) origins: Vec<usize>,
    /// The `=` of a `key=value` option, if the word is one: its offset in `text`.
    pub(crate) equals: Option<usize>,
}

impl Word {
    /// Where the character at byte `at` of `text` came from in the pipeline text.
    pub(crate) fn origin(&self, at: usize) -> usize {
        let index = self.text[..at.min(self.text.len())].chars().count();
        self.origins
            .get(index)
            .copied()
            .unwrap_or(self.span.end.saturating_sub(1).max(self.span.start))
    }

    /// The part after the `=` of an option, as a word of its own.
    pub(crate) fn value(&self) -> Option<Word> {
        let at = self.equals?;
        let skip = self.text[..=at].chars().count();
        let start = self.origins.get(skip).copied().unwrap_or(self.span.end);
        Some(Word {
            text: self.text[at + 1..].to_owned(),
            span: start..self.span.end,
            origins: self.origins[skip..].to_vec(),
            equals: None,
        })
    }

    /// The key of an option.
    pub(crate) fn key(&self) -> Option<&str> {
        self.equals.map(|at| &self.text[..at])
    }
}

/// A token: a word, a stage separator or a line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(Word),
    Pipe(usize),
    EndOfLine,
}

/// Splits `src` into tokens.
pub(crate) fn tokens(src: &str) -> Result<Vec<Token>, CliError> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            '\n' | ';' => {
                chars.next();
                out.push(Token::EndOfLine);
            }
            '|' => {
                chars.next();
                out.push(Token::Pipe(i));
            }
            '#' => {
                while let Some(&(_, c)) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            _ => out.push(Token::Word(word(src, &mut chars)?)),
        }
    }
    Ok(out)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Reads `[…]` or `{…}` with what it nests, and strings in `"…"` (with `\` escapes), as
/// written.
fn bracketed(
    src: &str,
    chars: &mut Chars<'_>,
    text: &mut String,
    origins: &mut Vec<usize>,
) -> Result<(), CliError> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut in_string = false;
    while let Some((j, c)) = chars.next() {
        text.push(c);
        origins.push(j);
        match c {
            '\\' if in_string => {
                if let Some((k, c)) = chars.next() {
                    text.push(c);
                    origins.push(k);
                }
            }
            '"' => in_string = !in_string,
            _ if in_string => {}
            '[' => open.push((j, ']')),
            '{' => open.push((j, '}')),
            ']' | '}' => {
                if open.pop().is_some_and(|(_, close)| close != c) {
                    return Err(CliError::at(
                        format!("`{c}` does not close the bracket before it"),
                        j..j + 1,
                    ));
                }
                if open.is_empty() {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    let (at, close) = open.last().copied().unwrap_or((src.len(), ']'));
    Err(CliError::at(
        format!("a bracket is not closed: add the closing `{close}`"),
        at..at + 1,
    ))
}

fn word(src: &str, chars: &mut Chars<'_>) -> Result<Word, CliError> {
    let start = chars.peek().map_or(src.len(), |&(i, _)| i);
    let mut text = String::new();
    let mut origins = Vec::new();
    let mut equals = None;
    let mut quoted = false;
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() || c == '|' || c == ';' => break,
            '\'' => {
                chars.next();
                quoted = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((j, c)) => {
                            text.push(c);
                            origins.push(j);
                        }
                        None => {
                            return Err(CliError::at(
                                "a quote is not closed: add the closing `'`",
                                i..src.len(),
                            ));
                        }
                    }
                }
            }
            '"' => {
                chars.next();
                quoted = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((j, '\\')) => {
                            let escape = match chars.next() {
                                Some((_, 'n')) => "\n".to_owned(),
                                Some((_, 't')) => "\t".to_owned(),
                                Some((_, c @ ('"' | '\\'))) => c.to_string(),
                                Some((_, c)) => format!("\\{c}"),
                                None => {
                                    return Err(CliError::at(
                                        "a backslash ends the text inside a quote",
                                        j..src.len(),
                                    ));
                                }
                            };
                            for c in escape.chars() {
                                text.push(c);
                                origins.push(j);
                            }
                        }
                        Some((j, c)) => {
                            text.push(c);
                            origins.push(j);
                        }
                        None => {
                            return Err(CliError::at(
                                "a quote is not closed: add the closing `\"`",
                                i..src.len(),
                            ));
                        }
                    }
                }
            }
            // JSON (or an expression) in brackets, at the start of a word or of an option's
            // value: kept as written, blanks and quotes included, up to the closing bracket
            '[' | '{' if text.is_empty() || equals == Some(text.len() - 1) => {
                bracketed(src, chars, &mut text, &mut origins)?;
            }
            '=' if equals.is_none() && !quoted => {
                chars.next();
                equals = Some(text.len());
                text.push('=');
                origins.push(i);
            }
            c => {
                chars.next();
                text.push(c);
                origins.push(i);
            }
        }
    }
    let end = chars.peek().map_or(src.len(), |&(i, _)| i);
    // An option is `key=value` with an unquoted identifier before the `=`.
    let equals = equals.filter(|&at| {
        at > 0
            && text[..at]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    Ok(Word {
        text,
        span: start..end,
        origins,
        equals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<String> {
        tokens(src)
            .unwrap()
            .into_iter()
            .map(|t| match t {
                Token::Word(w) => w.text,
                Token::Pipe(_) => "|".into(),
                Token::EndOfLine => "⏎".into(),
            })
            .collect()
    }

    #[test]
    fn splits_words_stages_and_lines() {
        assert_eq!(
            words("range 10 | map \"x + 1\"\nb = a|sink stdout"),
            [
                "range", "10", "|", "map", "x + 1", "⏎", "b", "=", "a", "|", "sink", "stdout"
            ]
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            words(r#"'a | b' "c \"d\" \\ e""#),
            ["a | b", r#"c "d" \ e"#]
        );
        assert_eq!(words("start='x y'"), ["start=x y"]);
        assert_eq!(words("a # comment | b\nc"), ["a", "⏎", "c"]);
    }

    #[test]
    fn options_are_unquoted_identifiers_before_an_equals_sign() {
        let option = |src: &str| match &tokens(src).unwrap()[0] {
            Token::Word(w) => w.equals,
            _ => panic!("not a word"),
        };
        assert_eq!(option("start=0"), Some(5));
        assert_eq!(option("key=\"x.a\""), Some(3));
        assert_eq!(option("\"x == 1\""), None);
        assert_eq!(option("=1"), None);
        assert_eq!(option("a.b=1"), None);
    }

    #[test]
    fn brackets_keep_json_whole() {
        assert_eq!(
            words(r#"values [1, "a | b", {"c": [2, 3]}] | sink"#),
            ["values", r#"[1, "a | b", {"c": [2, 3]}]"#, "|", "sink"]
        );
        assert_eq!(words(r#"start={"n": 0} x"#), [r#"start={"n": 0}"#, "x"]);
        assert_eq!(words(r#"["a\"]", 1]"#), [r#"["a\"]", 1]"#]);
        // inside a word, a bracket is an ordinary character
        assert_eq!(words("x[0] 1"), ["x[0]", "1"]);
        let err = tokens("values [1, {2]").unwrap_err();
        assert!(err.message.contains("does not close"), "{err:?}");
        let err = tokens("values [1, [2]").unwrap_err();
        assert!(err.message.contains("closing `]`"), "{err:?}");
        assert_eq!(err.span, Some(7..8));
    }

    #[test]
    fn unclosed_quotes_are_errors() {
        assert!(tokens("map \"x + 1").is_err());
        assert!(tokens("map 'x").is_err());
        assert!(tokens("map \"x\\").is_err());
    }
}
