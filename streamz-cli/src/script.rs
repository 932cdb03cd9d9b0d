//! User functions: [rhai](https://rhai.rs) expressions over the element `x` (and `acc` in
//! `accumulate`), on JSON values.

use std::sync::{Arc, LazyLock};

use rhai::{AST, Dynamic, Engine, Scope};
use serde_json::Value;

use crate::error::CliError;
use crate::lex::Word;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let mut engine = Engine::new();
    // An unknown name is an error when the pipeline is read, not for each element.
    engine.set_strict_variables(true);
    engine.set_max_expr_depths(64, 32);
    // An expression cannot run away with the process: bounds on work and on the values it
    // makes (an element itself may be larger; these bound what one evaluation builds).
    engine.set_max_operations(10_000_000);
    engine.set_max_string_size(64 << 20);
    engine.set_max_array_size(1 << 24);
    engine.set_max_map_size(1 << 24);
    engine
});

/// A compiled expression.
#[derive(Clone)]
pub(crate) struct Expr {
    ast: Arc<AST>,
    vars: &'static [&'static str],
    pub(crate) text: Arc<str>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.text)
    }
}

impl Expr {
    /// Compiles `word` as an expression over the variables `vars`; a syntax error points
    /// into the word.
    pub(crate) fn compile(word: &Word, vars: &'static [&'static str]) -> Result<Self, CliError> {
        let mut scope = Scope::new();
        for var in vars {
            scope.push_dynamic(*var, Dynamic::UNIT);
        }
        match ENGINE.compile_expression_with_scope(&scope, &word.text) {
            Ok(ast) => Ok(Expr {
                ast: Arc::new(ast),
                vars,
                text: Arc::from(word.text.as_str()),
            }),
            Err(err) => {
                let at = byte_offset(&word.text, err.position());
                let start = word.origin(at);
                let message = err.err_type().to_string();
                let help = if message.contains("Undefined variable") {
                    format!(
                        "the expression can use {}",
                        vars.iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )
                } else {
                    "expressions are rhai (https://rhai.rs), such as \"x + 1\" or \"x.name == `a`\""
                        .to_owned()
                };
                Err(CliError::at(
                    format!("the expression `{}` does not parse: {message}", word.text),
                    start..start + 1,
                )
                .help(help))
            }
        }
    }

    /// Evaluates the expression with `values` for its variables, in order.
    pub(crate) fn eval(&self, values: &[&Value]) -> Result<Value, String> {
        let mut scope = Scope::new();
        for (var, value) in self.vars.iter().zip(values) {
            scope.push_dynamic(*var, to_dynamic(value)?);
        }
        let out: Dynamic = ENGINE
            .eval_ast_with_scope(&mut scope, &self.ast)
            .map_err(|e| e.to_string())?;
        from_dynamic(&out)
    }

    /// Evaluates the expression as a condition.
    pub(crate) fn test(&self, values: &[&Value]) -> Result<bool, String> {
        match self.eval(values)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("the condition gave {other}, not true or false")),
        }
    }
}

fn to_dynamic(value: &Value) -> Result<Dynamic, String> {
    rhai::serde::to_dynamic(value).map_err(|e| e.to_string())
}

fn from_dynamic(value: &Dynamic) -> Result<Value, String> {
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Some(bad) = non_finite(value) {
        return Err(format!(
            "the result holds {bad}, which JSON cannot hold (a division by zero?)"
        ));
    }
    rhai::serde::from_dynamic(value).map_err(|e| format!("the result is not a JSON value: {e}"))
}

/// An infinite or NaN number anywhere in `value`: JSON has none, and serde would write
/// `null`, silently.
fn non_finite(value: &Dynamic) -> Option<f64> {
    if let Ok(x) = value.as_float() {
        return (!x.is_finite()).then_some(x);
    }
    if value.is_array() {
        let items = value.read_lock::<rhai::Array>()?;
        return items.iter().find_map(non_finite);
    }
    if value.is_map() {
        let map = value.read_lock::<rhai::Map>()?;
        return map.values().find_map(non_finite);
    }
    None
}

/// The byte offset in `text` of rhai's (line, column) position.
fn byte_offset(text: &str, position: rhai::Position) -> usize {
    let (Some(line), Some(column)) = (position.line(), position.position()) else {
        return 0;
    };
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lex::{Token, tokens};
    use serde_json::json;

    fn word(src: &str) -> Word {
        match tokens(src).unwrap().remove(0) {
            Token::Word(w) => w,
            _ => panic!("not a word"),
        }
    }

    #[test]
    fn evaluates_over_json() {
        let e = Expr::compile(&word("\"x + 1\""), &["x"]).unwrap();
        assert_eq!(e.eval(&[&json!(41)]).unwrap(), json!(42));
        let e = Expr::compile(&word("\"acc + x\""), &["acc", "x"]).unwrap();
        assert_eq!(e.eval(&[&json!(1), &json!(2)]).unwrap(), json!(3));
        let e = Expr::compile(&word("'x.name + \"!\"'"), &["x"]).unwrap();
        assert_eq!(e.eval(&[&json!({"name": "a"})]).unwrap(), json!("a!"));
        let e = Expr::compile(&word("'[x, x * 2]'"), &["x"]).unwrap();
        assert_eq!(e.eval(&[&json!(2)]).unwrap(), json!([2, 4]));
        let e = Expr::compile(&word("'x % 2 == 0'"), &["x"]).unwrap();
        assert!(e.test(&[&json!(4)]).unwrap());
        assert!(e.test(&[&json!(3)]).is_ok_and(|b| !b));
    }

    #[test]
    fn syntax_errors_point_into_the_pipeline() {
        let src = "  \"x + * 2\"";
        let err = Expr::compile(&word(src), &["x"]).unwrap_err();
        let at = err.span.clone().unwrap().start;
        assert_eq!(&src[at..at + 1], "*", "{err:?}");
        let err = Expr::compile(&word("\"y + 1\""), &["x"]).unwrap_err();
        assert!(err.help.unwrap().contains("`x`"));
    }

    #[test]
    fn runtime_errors_are_values() {
        let e = Expr::compile(&word("'x + 1'"), &["x"]).unwrap();
        assert!(e.eval(&[&json!("a")]).is_ok()); // string + int concatenates in rhai
        let e = Expr::compile(&word("'x / 0'"), &["x"]).unwrap();
        assert!(e.eval(&[&json!(1)]).is_err());
        let e = Expr::compile(&word("'x'"), &["x"]).unwrap();
        assert!(e.test(&[&json!(1)]).is_err());
    }

    #[test]
    fn an_expression_cannot_exhaust_memory() {
        let e = Expr::compile(&word("'[x].pad(100000000000, 0)'"), &["x"]).unwrap();
        let err = e.eval(&[&json!(1)]).unwrap_err();
        assert!(err.contains("array"), "{err}");
        let e = Expr::compile(&word("'x.pad(100000000000, \"a\")'"), &["x"]).unwrap();
        let err = e.eval(&[&json!("b")]).unwrap_err();
        assert!(err.contains("string"), "{err}");
    }
}
