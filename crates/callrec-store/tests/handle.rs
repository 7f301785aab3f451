//! The async handle under a burst: calls beyond what can run at once wait for their turn in
//! async code instead of each parking a thread of tokio's blocking pool.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use callrec_store::StoreHandle;
use support::Fixture;

/// Run `n` calls at once through `call`; the threads that ran them.
async fn burst<F, Fut>(n: usize, call: F) -> HashSet<ThreadId>
where
    F: Fn(Arc<Mutex<HashSet<ThreadId>>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(call(threads.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    threads.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_and_reads_waits_its_turn_instead_of_taking_a_thread_each() {
    let mut f = Fixture::new();
    f.user("1001");
    let Fixture {
        store, dir: _dir, ..
    } = f;
    let store = StoreHandle::new(store);

    // Each call holds its thread a moment, so that without turns 200 of them overlap and
    // the pool starts a thread for nearly every one.
    let hold = Duration::from_millis(2);
    let s = store.clone();
    let writers = burst(200, move |threads| {
        let s = s.clone();
        async move {
            s.write(move |store| {
                threads.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(hold);
                store.view().user("default", "1001").map(|_| ())
            })
            .await
            .unwrap()
        }
    })
    .await;
    assert!(
        writers.len() <= 8,
        "200 writes took {} blocking threads",
        writers.len()
    );

    let s = store.clone();
    let readers = burst(200, move |threads| {
        let s = s.clone();
        async move {
            s.read(move |v| {
                threads.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(hold);
                v.user("default", "1001").map(|_| ())
            })
            .await
            .unwrap()
        }
    })
    .await;
    assert!(
        readers.len() <= 8 + 8,
        "200 reads took {} blocking threads (8 run at once)",
        readers.len()
    );
}
