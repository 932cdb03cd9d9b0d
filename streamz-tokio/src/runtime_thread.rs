//! [`RuntimeThread`]: a one-thread tokio runtime on a thread of its own, for the connectors
//! whose client libraries need tokio (rumqttc, async-nats, tokio-tungstenite), so that they
//! work under every streamz executor.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A tokio runtime of one thread, on a thread of its own, running one future.
///
/// The future is given a [`Stopping`], which resolves once the `RuntimeThread` is dropped:
/// it then finishes what it must (flushes, close frames) and returns. Dropping the
/// `RuntimeThread` waits for that, and then gives the runtime's other tasks 100 ms to end
/// (except when dropped on the thread itself, which cannot wait for itself).
///
/// # Examples
///
/// ```
/// use streamz_tokio::RuntimeThread;
///
/// let (said, hears) = std::sync::mpsc::channel();
/// let thread = RuntimeThread::spawn("example", move |stopping| async move {
///     said.send("running").unwrap();
///     stopping.await;
///     said.send("stopped").unwrap();
/// })
/// .unwrap();
/// assert_eq!(hears.recv().unwrap(), "running");
/// drop(thread); // tells the future to stop, and waits for it
/// assert_eq!(hears.try_recv().unwrap(), "stopped");
/// ```
pub struct RuntimeThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for RuntimeThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeThread")
            .field("thread", &self.thread.as_ref().map(|t| t.thread().name()))
            .finish_non_exhaustive()
    }
}

impl RuntimeThread {
    /// Starts a thread named `name` with a one-thread runtime (I/O and time enabled), and
    /// runs what `run` makes on it until that ends.
    ///
    /// # Errors
    ///
    /// When the runtime or its thread cannot be started.
    pub fn spawn<F, Fut>(name: impl Into<String>, run: F) -> std::io::Result<RuntimeThread>
    where
        F: FnOnce(Stopping) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel();
        let thread = thread::Builder::new().name(name.into()).spawn(move || {
            runtime.block_on(run(Stopping(stopped)));
            runtime.shutdown_timeout(Duration::from_millis(100));
        })?;
        Ok(RuntimeThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The runtime's handle, to spawn more tasks on it.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

/// Resolves once its [`RuntimeThread`] is dropped.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Stopping(oneshot::Receiver<()>);

impl Future for Stopping {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // a message or a dropped sender: both mean stop
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}
