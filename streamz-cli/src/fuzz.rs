//! The pipeline reader must never panic, whatever text it is given: property tests over
//! random text and over random sequences of the language's own tokens, read and built into a
//! graph (sources are not started, so nothing is run, bound or opened).

use proptest::prelude::*;

use crate::build::build;
use crate::graph::Runtime;
use crate::ops::{Kind, OpSpec, Role, all};
use crate::parse::parse;

/// Reads and builds `src`; an error must render against the text without panicking, and a
/// built graph must have something to run.
fn read(src: &str) {
    let rt = Runtime::for_tests();
    let outcome = parse(src).and_then(|program| build(&program, src, &rt));
    match outcome {
        Ok(graph) => assert!(!graph.feeds.is_empty(), "a graph without a source: {src:?}"),
        Err(err) => {
            let shown = err.render(src);
            assert!(shown.starts_with("error: "), "{shown}");
        }
    }
}

/// Operators whose building opens a file or connects to a broker: not fuzzed.
const BUILT_WITH_IO: &[&str] = &[
    "sink_to_textfile",
    "to_kafka",
    "to_mqtt",
    "to_nats",
    "to_websocket",
];

/// Pieces of pipeline text: every operator and parameter name, and values of every kind,
/// good and bad, quoted and not.
fn piece() -> impl Strategy<Value = String> {
    let ops: Vec<String> = all()
        // the operators that open a file or connect to a broker while the graph is built
        .filter(|op| !BUILT_WITH_IO.contains(&op.name))
        .map(|op| op.name.to_owned())
        .collect();
    let options: Vec<String> = all()
        .flat_map(|op| op.params.iter().map(|p| format!("{}=", p.name)))
        .collect();
    let values = [
        "0",
        "1",
        "3",
        "-1",
        "2.5",
        "1e400",
        "99999999999999999999",
        "true",
        "false",
        "500ms",
        "1s",
        "0s",
        "-1s",
        "1y",
        "ms",
        "[1,2]",
        "[",
        "]",
        "{\"a\":1}",
        "{",
        "null",
        "\"x + 1\"",
        "'acc + x'",
        "\"x % 2 == 0\"",
        "'x.a'",
        "\"((\"",
        "\"x /\"",
        "'y'",
        "\"\"",
        "''",
        "\"",
        "'",
        "\\",
        "\"\\n\"",
        "\"a\\\"b\"",
        "x",
        "acc",
        "a",
        "b",
        "stdout",
        "null",
        "*.txt",
        "é",
        "名",
        "\u{0}",
        "\u{200b}",
        "#",
        "# note",
        "=",
        "a =",
        "b=",
        "|",
        "||",
        ";",
        "\n",
        "\t",
        "127.0.0.1",
        "65536",
        "8080",
    ];
    prop_oneof![
        3 => proptest::sample::select(ops),
        2 => proptest::sample::select(options),
        4 => proptest::sample::select(values.map(str::to_owned).to_vec()),
        1 => "\\PC{0,6}",
    ]
}

fn soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (piece(), prop_oneof![Just(" "), Just(""), Just(" | ")]),
        0..14,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(p, sep)| [p, sep.to_owned()])
            .collect()
    })
}

/// A value for a parameter of `kind`: usually a fitting one, sometimes any piece.
fn value(kind: Kind) -> BoxedStrategy<String> {
    let good: &[&str] = match kind {
        Kind::Expr => &[
            "\"x + 1\"",
            "'x * 2'",
            "'x % 2 == 0'",
            "'[x, x]'",
            "'#{a: x}'",
            "'x.a'",
            "'y'",
            "'x / 0'",
            "'if x > 1 { x } else { 0 }'",
        ],
        Kind::AccExpr => &["'acc + x'", "'[acc, x]'", "'acc'", "'acc +'"],
        Kind::Count => &["0", "1", "2", "3", "10"],
        Kind::Int => &["-1", "0", "5", "9223372036854775807"],
        Kind::Bool => &["true", "false"],
        Kind::Duration => &["1ms", "500ms", "1s", "0s"],
        Kind::Json => &["[1,2]", "'{\"a\":1}'", "3", "a", "null"],
        Kind::Text => &["stdout", "null", "'*.nothing-here'", "'echo hi'", "x"],
        Kind::Port => &["0", "8080"],
        Kind::Names => &["a", "a b", "b c", "a a"],
    };
    let good: Vec<String> = good.iter().map(|s| (*s).to_owned()).collect();
    prop_oneof![30 => proptest::sample::select(good), 1 => piece()].boxed()
}

/// A stage of an operator with `role`: its parameters by position or by name, some left out.
fn stage(role: Role) -> impl Strategy<Value = String> {
    let ops: Vec<&'static OpSpec> = all()
        .filter(|op| op.role() == role && !BUILT_WITH_IO.contains(&op.name))
        .collect();
    proptest::sample::select(ops).prop_flat_map(|op| {
        let params: Vec<_> = op
            .params
            .iter()
            .map(|p| (Just(*p), value(p.kind), any::<bool>(), 0..8u8))
            .collect();
        params.prop_map(move |params| {
            let mut words = vec![op.name.to_owned()];
            let mut options = Vec::new();
            for (p, v, by_name, keep) in params {
                if keep == 0 && p.default.is_some() {
                    continue; // left out
                }
                // by position while the table's order allows it
                if p.kind == Kind::Names || (p.positional && options.is_empty() && !by_name) {
                    words.push(v);
                } else {
                    options.push(format!("{}={v}", p.name));
                }
            }
            words.extend(options);
            words.join(" ")
        })
    })
}

/// One to three lines `a = …`, `b = …`, …: a source or an earlier stream, transforms, maybe
/// a sink.
fn program() -> impl Strategy<Value = String> {
    let line = (
        prop_oneof![3 => stage(Role::Source), 1 => Just("a".to_owned()), 1 => stage(Role::Transform)],
        proptest::collection::vec(
            prop_oneof![6 => stage(Role::Transform), 1 => stage(Role::Pooled)],
            0..5,
        ),
        proptest::option::of(stage(Role::Sink)),
    )
        .prop_map(|(first, middle, sink)| {
            std::iter::once(first)
                .chain(middle)
                .chain(sink)
                .collect::<Vec<_>>()
                .join(" | ")
        });
    proptest::collection::vec(line, 1..4).prop_map(|lines| {
        lines
            .into_iter()
            .zip(["a", "b", "c"])
            .map(|(line, name)| format!("{name} = {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_text_is_read_or_refused_without_a_panic(src in "\\PC{0,40}|[ -~\\n]{0,60}") {
        read(&src);
    }

    #[test]
    fn token_soup_is_read_or_refused_without_a_panic(src in soup()) {
        read(&src);
    }

    #[test]
    fn pipelines_of_real_stages_are_read_or_refused_without_a_panic(src in program()) {
        read(&src);
    }
}
