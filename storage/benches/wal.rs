//! Durable appends: `DiskStore::write` + `sync` of batches of 100-byte
//! records, side by side with a bare `write` + `fdatasync` of the same
//! bytes to a plain file, in the same run.
//!
//! ```text
//! cargo bench -p consensus-storage --bench wal
//! ```
//!
//! Both write into temporary directories under the current directory (the
//! package directory under `cargo bench`; not `/tmp`, which may be a tmpfs
//! where fdatasync costs nothing). Set `WAL_BENCH_DIR` to measure another
//! file system. The bare baseline appends exactly the bytes the store
//! appends per batch (taken from a reference run), so the difference is the
//! store's own cost: validation, encoding, CRC32C, bookkeeping. The goal is
//! a store cost per batch within 1.5x of the bare write + fdatasync.
//!
//! Medians: `target/criterion/wal_append/<impl>/<batch>/new/estimates.json`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use consensus_api::{Bytes, Entry, LogStore, Payload, WriteBatch};
use consensus_storage::{DiskOptions, DiskStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const RECORD_BYTES: usize = 100;
const BATCHES: [usize; 3] = [1, 16, 256];

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("WAL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(PathBuf::from(dir)).expect("temp dir in WAL_BENCH_DIR"),
        None => tempfile::tempdir_in(std::env::current_dir().expect("cwd")).expect("temp dir"),
    }
}

fn entries(batch: usize, first_index: u64) -> Vec<Entry> {
    let payload = Bytes::from(vec![0x5a; RECORD_BYTES]);
    (0..batch as u64)
        .map(|i| Entry {
            index: first_index + i,
            epoch: 1,
            payload: Payload::Command(payload.clone()),
        })
        .collect()
}

/// The exact bytes the store appends for one batch in steady state, so the
/// bare baseline writes the same bytes.
fn store_bytes_per_batch(batch: usize) -> Vec<u8> {
    let dir = bench_dir();
    let mut store = DiskStore::open(dir.path(), DiskOptions::default()).expect("open");
    let segment = dir.path().join(format!("{:020}.wal", 1));
    let mut next = 1;
    let mut write = |store: &mut DiskStore| {
        let append = entries(batch, next);
        next += batch as u64;
        let batch = WriteBatch {
            hard_state: None,
            truncate_from: None,
            append: &append,
            snapshot: None,
        };
        store.write(&batch).expect("write");
        store.sync().expect("sync");
    };
    // Steady state: every batch after a sync carries a sync mark.
    write(&mut store);
    write(&mut store);
    let before = std::fs::metadata(&segment).expect("segment").len() as usize;
    write(&mut store);
    std::fs::read(&segment).expect("segment")[before..].to_vec()
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append");
    group.measurement_time(Duration::from_secs(8));
    group.warm_up_time(Duration::from_secs(2));
    for batch in BATCHES {
        let bytes = store_bytes_per_batch(batch);
        eprintln!("batch {batch}: {} bytes per batch", bytes.len());
        group.throughput(Throughput::Elements(batch as u64));

        group.bench_with_input(
            BenchmarkId::new("disk_store", batch),
            &batch,
            |b, &batch| {
                let dir = bench_dir();
                let mut store = DiskStore::open(dir.path(), DiskOptions::default()).expect("open");
                let mut append = entries(batch, 1);
                b.iter(|| {
                    store
                        .write(&WriteBatch {
                            hard_state: None,
                            truncate_from: None,
                            append: &append,
                            snapshot: None,
                        })
                        .expect("write");
                    store.sync().expect("sync");
                    for entry in &mut append {
                        entry.index += batch as u64;
                    }
                });
            },
        );

        group.bench_with_input(
            BenchmarkId::new("bare_write_fdatasync", batch),
            &bytes,
            |b, bytes| {
                let dir = bench_dir();
                let mut file: File = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.path().join("bare.log"))
                    .expect("open");
                b.iter(|| {
                    file.write_all(bytes).expect("write");
                    file.sync_data().expect("fdatasync");
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, durable_appends);
criterion_main!(benches);
