//! Deep graphs do not overflow the stack.

use streamz_core::Stream;

fn chain(len: usize) -> (Stream<u64>, streamz_core::VecSink<u64>) {
    let source = Stream::new();
    let mut tail = source.clone();
    for _ in 0..len {
        tail = tail.map(|x| x + 1);
    }
    let out = tail.sink_to_vec();
    (source, out)
}

#[test]
fn a_thousand_node_chain_emits_on_a_two_mib_thread() {
    let out = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let (source, out) = chain(1000);
            source.emit_blocking(0).unwrap();
            source.emit_blocking(1).unwrap();
            out.to_vec()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(out, vec![1000, 1001]);
}

#[test]
fn a_hundred_thousand_node_chain_emits_too() {
    let out = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let (source, out) = chain(100_000);
            source.emit_blocking(0).unwrap();
            source.close().wait().unwrap();
            assert!(out.is_closed());
            out.to_vec()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(out, vec![100_000]);
}
