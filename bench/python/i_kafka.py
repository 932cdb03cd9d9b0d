#!/usr/bin/env python
"""(i) Kafka: from_kafka -> map(upper) -> to_kafka, through a local broker.

Runs the pipeline until it is terminated (SIGTERM or SIGINT); the figures are taken by
`streamz-bench kafka`, which fills the input topic, reads the output topic and times the
records, in the same way for this pipeline and for the Rust one.

Usage: python i_kafka.py BROKERS INPUT OUTPUT GROUP [record|batched]

`record` (the default) is `Stream.from_kafka`, one record at a time; `batched` is
`Stream.from_kafka_batched` (its defaults: a poll every second, batches of up to 10,000)
followed by `flatten`. Both with confluent-kafka's (librdkafka's) default settings but
`auto.offset.reset=earliest` and `fetch.wait.max.ms=10` (as the Rust pipeline's), so that
the broker's long poll does not stand in for the pipeline's own latency.
"""
import signal
import sys

from streamz import Stream
from tornado.ioloop import IOLoop


def main(brokers, topic_in, topic_out, group, mode="record"):
    loop = IOLoop.current()
    consumer = {
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 10,
    }
    producer = {"bootstrap.servers": brokers}
    if mode == "batched":
        # its default interval, 1 s, as a number: given as a string it needs pandas
        source = Stream.from_kafka_batched(topic_in, consumer, poll_interval=1, loop=loop)
        records = source.flatten()
    else:
        source = Stream.from_kafka([topic_in], consumer, loop=loop)
        records = source
    records.map(lambda v: v.upper()).to_kafka(topic_out, producer)

    def stop(*_):
        loop.add_callback_from_signal(loop.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    source.start()  # a node's start() starts the sources upstream of it
    print("started", flush=True)
    loop.start()


if __name__ == "__main__":
    main(*sys.argv[1:])
