//! Failures are logged through `tracing` at the node's name. A test binary of its own: tracing
//! caches, for the whole process, which callsites a subscriber wants, and tests on other
//! threads registering callsites meanwhile could leave this one's subscriber out.

use std::sync::{Arc, Mutex};

use streamz_core::Stream;

#[test]
fn failures_are_logged_at_the_node_name() {
    let logged = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || LogWriter(sink.clone()))
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let source = Stream::new();
        source.map(|x: i32| 1 / x).named("invert");
        let _ = source.emit_blocking(0);
    });
    let text = String::from_utf8(logged.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("node=invert"), "{text}");
    assert!(text.contains("divide by zero"), "{text}");
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
