//! The publication layer: the writer's cost per publish, and readers' copies, alone and while
//! another thread hammers the other end.
#![allow(clippy::unwrap_used, reason = "benches fail loudly on a bad fixture")]
#![allow(missing_docs, reason = "criterion generates the entry points")]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plumb::book::publish::channel;

mod common;

fn bench(c: &mut Criterion) {
    let (book, _) = common::typical_v2_update();
    // Verification computed and cached the checksum, as it is after every applied message.
    let _ = book.checksum();

    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    let (mut publisher, reader) = channel(10);
    g.bench_function("writer_depth10", |b| b.iter(|| publisher.publish(black_box(&book), 1, 2)));
    g.bench_function("reader_top", |b| b.iter(|| black_box(&reader).top()));
    g.bench_function("reader_top10_copy", |b| b.iter(|| black_box(&reader).snapshot::<10>()));

    // Contended: a reader thread polling and copying while the writer publishes...
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (reader, stop) = (reader.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(reader.snapshot::<10>());
            }
        })
    };
    g.bench_function("writer_depth10_while_read", |b| b.iter(|| publisher.publish(black_box(&book), 1, 2)));
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();

    // ...and readers while a writer thread publishes back to back, then at a feed's pace (a
    // publish, then about a microsecond of other work).
    let mut publisher = Some(publisher);
    for (pace, spins) in [("back_to_back", 0), ("paced", 400)] {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, book, mut publisher) = (Arc::clone(&stop), book.clone(), publisher.take().unwrap());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    publisher.publish(&book, 1, 2);
                    for _ in 0..spins {
                        std::hint::spin_loop();
                    }
                }
                publisher
            })
        };
        g.bench_function(format!("reader_top_while_written_{pace}"), |b| b.iter(|| black_box(&reader).top()));
        g.bench_function(format!("reader_top10_copy_while_written_{pace}"), |b| {
            b.iter(|| black_box(&reader).snapshot::<10>());
        });
        stop.store(true, Ordering::Relaxed);
        publisher = Some(writer.join().unwrap());
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config(2);
    targets = bench
}
criterion_main!(benches);
