//! Event time: [`EventTime`], the watermarks that travel through a graph beside its elements,
//! and how a node with several inputs combines theirs (`PortMarks`).
//!
//! A watermark `W` on a stream says that every element with an event time before `W` has
//! arrived: what comes later with an earlier time is *late*. Watermarks only move forward.
//! See `DESIGN.md`, "Event time", and the user guide's chapter of that name.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::Port;

/// An element's time: when the event happened, as its data says (not when it arrived), in
/// nanoseconds from an origin of your choice (the Unix epoch, usually).
///
/// It spans about 292 years either side of the origin; arithmetic saturates at the ends.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use streamz_core::EventTime;
///
/// let t = EventTime::from_millis(1_500);
/// assert_eq!(t.as_nanos(), 1_500_000_000);
/// assert_eq!(t + Duration::from_millis(500), EventTime::from_secs(2));
/// assert_eq!(t.to_string(), "1.5s");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct EventTime(i64);

impl EventTime {
    /// The earliest time: a watermark that promises nothing.
    pub const MIN: EventTime = EventTime(i64::MIN);
    /// The latest time: the watermark of a stream that has ended.
    pub const MAX: EventTime = EventTime(i64::MAX);

    /// `n` nanoseconds after the origin.
    pub const fn from_nanos(n: i64) -> Self {
        EventTime(n)
    }

    /// `n` microseconds after the origin.
    pub const fn from_micros(n: i64) -> Self {
        EventTime(n.saturating_mul(1_000))
    }

    /// `n` milliseconds after the origin (a Kafka record's timestamp).
    pub const fn from_millis(n: i64) -> Self {
        EventTime(n.saturating_mul(1_000_000))
    }

    /// `n` seconds after the origin.
    pub const fn from_secs(n: i64) -> Self {
        EventTime(n.saturating_mul(1_000_000_000))
    }

    /// `secs` seconds after the origin, with a fraction (a Unix timestamp as Python's
    /// `time.time()` gives it); `None` if it is not a finite number.
    pub fn from_secs_f64(secs: f64) -> Option<Self> {
        let nanos = secs * 1e9;
        // `as` saturates, but a time at the very ends is almost surely a bad input
        (nanos.is_finite() && nanos.abs() < 9.2e18).then(|| EventTime(nanos.round() as i64))
    }

    /// The time of `t`, from the Unix epoch.
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => EventTime(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => EventTime(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// Nanoseconds after the origin.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whole milliseconds after the origin (rounded down).
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Seconds after the origin.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self + d`, at most [`MAX`](EventTime::MAX).
    pub fn saturating_add(self, d: Duration) -> Self {
        EventTime(self.0.saturating_add(nanos(d)))
    }

    /// `self - d`, at least [`MIN`](EventTime::MIN).
    pub fn saturating_sub(self, d: Duration) -> Self {
        EventTime(self.0.saturating_sub(nanos(d)))
    }
}

/// A duration in nanoseconds, saturating (a duration of more than 292 years is "for ever").
pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl std::ops::Add<Duration> for EventTime {
    type Output = EventTime;

    fn add(self, d: Duration) -> EventTime {
        self.saturating_add(d)
    }
}

impl std::ops::Sub<Duration> for EventTime {
    type Output = EventTime;

    fn sub(self, d: Duration) -> EventTime {
        self.saturating_sub(d)
    }
}

impl fmt::Display for EventTime {
    /// Seconds after the origin, as short as is exact (`1.5s`, `-0.000000001s`), or `MIN`
    /// and `MAX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EventTime::MIN => f.write_str("MIN"),
            EventTime::MAX => f.write_str("MAX"),
            EventTime(n) => {
                let sign = if n < 0 { "-" } else { "" };
                let n = n.unsigned_abs();
                let (secs, frac) = (n / 1_000_000_000, n % 1_000_000_000);
                if frac == 0 {
                    write!(f, "{sign}{secs}s")
                } else {
                    let frac = format!("{frac:09}");
                    write!(f, "{sign}{secs}.{}s", frac.trim_end_matches('0'))
                }
            }
        }
    }
}

impl fmt::Debug for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventTime({self})")
    }
}

/// What travels beside the elements: a stream's watermark, or word that it has gone idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Every element before this time has arrived.
    At(EventTime),
    /// The stream has had nothing for a while: a node combining inputs leaves it out until
    /// it sends a watermark again.
    Idle,
}

/// Where one input of a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMark {
    /// Nothing heard yet: it may still send anything, so it holds the others back.
    Unknown,
    At(EventTime),
    Idle,
    /// It has ended: it holds nothing back.
    Closed,
}

/// The watermarks of a node's inputs, and the one it has passed on: the least of those of
/// its inputs that are neither idle nor closed, never going back.
#[derive(Debug)]
pub(crate) struct PortMarks {
    ports: Vec<(Port, PortMark)>,
    /// What the node has passed on.
    out: Option<EventTime>,
    out_idle: bool,
}

impl PortMarks {
    /// A table for a node whose ports so far are `0..ports`, none heard from.
    pub(crate) fn new(ports: u32) -> Self {
        PortMarks {
            ports: (0..ports).map(|p| (Port(p), PortMark::Unknown)).collect(),
            out: None,
            out_idle: false,
        }
    }

    pub(crate) fn attach(&mut self, port: Port) {
        if !self.ports.iter().any(|(p, _)| *p == port) {
            self.ports.push((port, PortMark::Unknown));
        }
    }

    /// The upstream on `port` went away; what the node passes on now, if it moved.
    pub(crate) fn detach(&mut self, port: Port) -> Option<Mark> {
        self.ports.retain(|(p, _)| *p != port);
        self.combined()
    }

    /// The upstream on `port` ended.
    pub(crate) fn close(&mut self, port: Port) -> Option<Mark> {
        self.set(port, PortMark::Closed)
    }

    /// `mark` arrived on `port`; what the node passes on now, if it moved.
    pub(crate) fn update(&mut self, port: Port, mark: Mark) -> Option<Mark> {
        let mark = match mark {
            Mark::At(t) => PortMark::At(t),
            Mark::Idle => PortMark::Idle,
        };
        self.set(port, mark)
    }

    fn set(&mut self, port: Port, mark: PortMark) -> Option<Mark> {
        match self.ports.iter_mut().find(|(p, _)| *p == port) {
            Some((_, m)) => *m = mark,
            None => self.ports.push((port, mark)),
        }
        self.combined()
    }

    fn combined(&mut self) -> Option<Mark> {
        let mut least: Option<EventTime> = None;
        let mut idle = false;
        for (_, m) in &self.ports {
            let t = match *m {
                PortMark::Unknown => EventTime::MIN,
                PortMark::At(t) => t,
                PortMark::Idle => {
                    idle = true;
                    continue;
                }
                PortMark::Closed => continue,
            };
            least = Some(least.map_or(t, |l| l.min(t)));
        }
        match least {
            // every input idle (or closed, but some idle): the node is idle
            None if idle && !self.out_idle => {
                self.out_idle = true;
                Some(Mark::Idle)
            }
            // every input closed: the node's own close passes on the end
            None => None,
            Some(t) => {
                let moved = self.out.is_none_or(|out| t > out);
                let woke = std::mem::take(&mut self.out_idle);
                if moved {
                    self.out = Some(t);
                }
                match self.out {
                    Some(out) if (moved || woke) && out > EventTime::MIN => Some(Mark::At(out)),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(n: i64) -> Mark {
        Mark::At(EventTime::from_nanos(n))
    }

    #[test]
    fn the_least_of_the_inputs_goes_on_and_never_back() {
        let mut m = PortMarks::new(2);
        assert_eq!(m.update(Port(0), at(5)), None, "port 1 is unknown");
        assert_eq!(m.update(Port(1), at(3)), Some(at(3)));
        assert_eq!(m.update(Port(1), at(9)), Some(at(5)));
        assert_eq!(m.update(Port(0), at(4)), None, "never back");
        assert_eq!(m.close(Port(0)), Some(at(9)));
    }

    #[test]
    fn an_idle_input_is_left_out_until_it_speaks_again() {
        let mut m = PortMarks::new(2);
        m.update(Port(0), at(10));
        assert_eq!(m.update(Port(1), Mark::Idle), Some(at(10)));
        assert_eq!(m.update(Port(0), Mark::Idle), Some(Mark::Idle));
        assert_eq!(m.update(Port(0), Mark::Idle), None, "said once");
        // back with an older time: active again, at the watermark already passed on
        assert_eq!(m.update(Port(1), at(2)), Some(at(10)));
        assert_eq!(m.update(Port(0), at(20)), None, "port 1 holds it at 2");
    }

    #[test]
    fn times_print_as_seconds() {
        assert_eq!(EventTime::from_nanos(-1).to_string(), "-0.000000001s");
        assert_eq!(EventTime::from_secs(60).to_string(), "60s");
        assert_eq!(EventTime::MIN.to_string(), "MIN");
        assert_eq!(EventTime::from_secs_f64(f64::NAN), None);
        assert_eq!(
            EventTime::from_secs_f64(1.25),
            Some(EventTime::from_millis(1250))
        );
    }
}
