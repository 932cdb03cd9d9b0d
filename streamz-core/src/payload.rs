//! [`Payload`]: what the connectors' sinks can send.

use crate::Element;

/// What a connector's sink can send (`to_mqtt`, `to_nats`, `to_websocket`, …): an element's
/// bytes, and whether they are text.
///
/// # Examples
///
/// ```
/// use streamz_core::Payload;
///
/// assert_eq!("hi".to_owned().payload(), b"hi");
/// assert_eq!("hi".to_owned().text(), Some("hi"));
/// assert_eq!(vec![0u8, 1].text(), None);
/// ```
pub trait Payload: Element {
    /// The bytes to send.
    fn payload(&self) -> &[u8];

    /// The payload as text, when the element is text (a websocket sends it as a text
    /// message; otherwise as a binary one). None by default.
    fn text(&self) -> Option<&str> {
        None
    }
}

impl Payload for String {
    fn payload(&self) -> &[u8] {
        self.as_bytes()
    }

    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Payload for &'static str {
    fn payload(&self) -> &[u8] {
        self.as_bytes()
    }

    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Payload for Vec<u8> {
    fn payload(&self) -> &[u8] {
        self
    }
}
