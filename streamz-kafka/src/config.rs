//! Checks made when a source or sink is built, and the errors they give.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use streamz_core::{ErrorKind, NodeRef, StreamError};

/// `bootstrap.servers`, for messages.
pub(crate) fn servers(config: &ClientConfig) -> String {
    config
        .get("bootstrap.servers")
        .or_else(|| config.get("metadata.broker.list"))
        .unwrap_or("(no bootstrap.servers)")
        .to_owned()
}

pub(crate) fn failed(node: &NodeRef, message: String) -> StreamError {
    StreamError::new(ErrorKind::Failed, Some(node.clone()), message)
}

/// Asks the broker for its topics: fails if it does not answer within `timeout`, or if one
/// of `topics` is not there.
pub(crate) fn check_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    servers: &str,
    timeout: Duration,
    node: &NodeRef,
) -> Result<(), StreamError> {
    if topics.is_empty() {
        return Err(failed(node, "no topic given".into()));
    }
    let metadata = client.fetch_metadata(None, timeout).map_err(|e| {
        failed(
            node,
            format!(
                "the Kafka broker at {servers} did not answer within {}: {e} (is it running, and is `bootstrap.servers` right?)",
                humantime::format_duration(timeout)
            ),
        )
    })?;
    for topic in topics {
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic.as_str());
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            Some(t) => {
                return Err(failed(
                    node,
                    format!(
                        "the topic `{topic}` on {servers} cannot be used: {:?}",
                        t.error().map(rdkafka::types::RDKafkaErrorCode::from)
                    ),
                ));
            }
            None => {
                let mut known: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
                known.sort_unstable();
                return Err(failed(
                    node,
                    format!(
                        "there is no topic `{topic}` on {servers} (it has: {}); create it first",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}
