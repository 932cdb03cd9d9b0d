//! Counts words in a text, one line at a time, and prints the running totals and the most
//! frequent words when the text ends.
//!
//! ```text
//! cargo run -p streamz-core --example word_count              # a built-in text
//! cargo run -p streamz-core --example word_count -- FILE      # any text file
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use streamz_core::Stream;

const SAMPLE: &str = "\
It was the best of times, it was the worst of times,
it was the age of wisdom, it was the age of foolishness,
it was the epoch of belief, it was the epoch of incredulity,
it was the season of Light, it was the season of Darkness,
it was the spring of hope, it was the winter of despair.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(path)?,
        None => SAMPLE.to_owned(),
    };

    let lines = Stream::<String>::new().named("lines");
    let words = lines
        .map(|line| {
            line.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .named("split")
        .flatten();

    // running total of words, printed every line
    let per_line = lines.map(|line| line.split_whitespace().count());
    per_line
        .accumulate(|total: &usize, n| total + n)
        .sink(|total| println!("words so far: {total}"));

    // the latest counts, kept for the end
    let latest: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let keep = latest.clone();
    words
        .frequencies()
        .sink(move |counts| *keep.lock().unwrap() = counts);

    // words in batches of 8, the last batch flushed at close
    let batches = words.partition(8).sink_to_vec();

    for line in text.lines() {
        lines.emit_blocking(line.to_owned())?;
    }
    lines.close().wait()?;

    let mut top: Vec<(String, usize)> = latest.lock().unwrap().clone().into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("most frequent:");
    for (word, n) in top.iter().take(5) {
        println!("{n:>5}  {word}");
    }
    let batches = batches.to_vec();
    println!(
        "{} batches of up to 8 words; the last one: {:?}",
        batches.len(),
        batches.last().unwrap_or(&Vec::new())
    );
    Ok(())
}
