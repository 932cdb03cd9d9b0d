//! The virtual-time executor fires timers in order and only when told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamz_core::{Clock, Executor, Stream, VirtualExecutor};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn timers_fire_in_deadline_order_only_when_advanced() {
    let ex = VirtualExecutor::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    for (name, delay) in [("c", 30), ("a", 10), ("b", 20), ("a2", 10)] {
        let (clock, log) = (ex.clone(), log.clone());
        ex.spawn(Box::pin(async move {
            clock.clock().sleep(ms(delay)).await;
            log.lock().unwrap().push((name, clock.elapsed()));
        }));
    }
    ex.run_until_stalled();
    assert_eq!(ex.pending_timers(), 4);
    assert!(log.lock().unwrap().is_empty());
    ex.advance(ms(9));
    assert!(log.lock().unwrap().is_empty());
    ex.advance(ms(1));
    assert_eq!(*log.lock().unwrap(), vec![("a", ms(10)), ("a2", ms(10))]);
    ex.advance(ms(100));
    assert_eq!(log.lock().unwrap().len(), 4);
    assert_eq!(log.lock().unwrap()[3], ("c", ms(30)));
    assert_eq!(ex.elapsed(), ms(110));
    assert_eq!(ex.pending_timers(), 0);
}

#[test]
fn work_woken_by_a_timer_runs_before_the_next_timer_fires() {
    let ex = VirtualExecutor::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (clock, l) = (ex.clone(), log.clone());
    ex.spawn(Box::pin(async move {
        for _ in 0..3 {
            clock.clock().sleep(ms(10)).await;
            l.lock().unwrap().push(clock.elapsed());
        }
    }));
    ex.advance(ms(35));
    assert_eq!(*log.lock().unwrap(), vec![ms(10), ms(20), ms(30)]);
}

#[test]
fn block_on_jumps_to_the_next_timer() {
    let ex = VirtualExecutor::new();
    let clock = ex.clone();
    let start = ex.now();
    let out = ex.block_on(async move {
        clock.clock().sleep(ms(250)).await;
        clock.clock().sleep_until(clock.now() - ms(1)).await; // past deadline: no wait
        7
    });
    assert_eq!(out, 7);
    assert_eq!(ex.now() - start, ms(250));
}

#[test]
fn offloaded_work_runs_on_the_next_turn() {
    let ex = VirtualExecutor::new();
    let done = Arc::new(Mutex::new(false));
    let flag = done.clone();
    ex.spawn_blocking(Box::new(move || *flag.lock().unwrap() = true));
    assert!(!*done.lock().unwrap());
    ex.run_until_stalled();
    assert!(*done.lock().unwrap());
}

#[test]
fn graphs_inherit_the_executor() {
    let ex = VirtualExecutor::new();
    let source = Stream::<i32>::with_executor(ex.clone());
    let mapped = source.map(|x| x + 1).zip(&source);
    assert!(mapped.executor().is_some());
    assert!(Stream::<i32>::new().map(|x| x).executor().is_none());
}

#[test]
#[should_panic(expected = "can never complete")]
fn block_on_reports_a_future_that_can_never_complete() {
    VirtualExecutor::new().block_on(std::future::pending::<()>());
}
