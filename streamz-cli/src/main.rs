//! `streamz`: run and draw stream pipelines from the shell.
//!
//! The pipeline language is not written yet; for now the command only reports its version.

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    match std::env::args().nth(1).as_deref() {
        Some("--version" | "-V") => println!("streamz {version}"),
        _ => {
            eprintln!("streamz {version}: the pipeline language is not available yet");
            std::process::exit(2);
        }
    }
}
