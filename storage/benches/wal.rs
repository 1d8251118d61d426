//! Durable appends: `DiskStore::write` + `sync` of batches of 100-byte
//! records, side by side with bare writes + `fdatasync` of the same bytes
//! to a plain file, in the same run:
//!
//! * `disk_store`: the store as configured by default (preallocated
//!   segments);
//! * `disk_store_appending`: the store with
//!   [`DiskOptions::preallocate_segments`] off (segments grow by
//!   appending, as before preallocation existed);
//! * `bare_write_fdatasync`: append + fdatasync to a growing file;
//! * `bare_preallocated_fdatasync`: a file preallocated once with
//!   `fallocate` to the segment size, then overwritten at the write offset
//!   plus fdatasync (a new preallocated file when it is full: what the
//!   store's segments do); the floor the store is compared with;
//! * `bare_zeroed_fdatasync`: a file zero-filled by writing zeros once,
//!   then overwritten (wrapping around) + fdatasync: writes that touch no
//!   metadata at all, for reference.
//!
//! A second group, `wal_rotation`, times only the batch that fills a
//! 64 MiB segment and so rotates (sync, trim, create + preallocate the next
//! segment), preallocated or not: what a rotation adds to one commit.
//!
//! ```text
//! cargo bench -p consensus-storage --bench wal
//! ```
//!
//! Everything writes into temporary directories under the current
//! directory (the package directory under `cargo bench`; not `/tmp`, which
//! may be a tmpfs where fdatasync costs nothing). Set `WAL_BENCH_DIR` to
//! measure another file system. The bare variants write exactly the bytes
//! the store writes per batch (taken from a reference run), so the
//! difference is the store's own cost: validation, encoding, CRC32C,
//! bookkeeping. The goal is a store cost per batch within 1.5x of the bare
//! preallocated write + fdatasync.
//!
//! Medians: `target/criterion/wal_append/<impl>/<batch>/new/estimates.json`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use consensus_api::{Bytes, Entry, LogStore, Payload, WriteBatch};
use consensus_storage::{DiskOptions, DiskStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const RECORD_BYTES: usize = 100;
const BATCHES: [usize; 3] = [1, 16, 256];
/// The store's default segment size, which the bare preallocated file
/// mirrors.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

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
    // Without preallocation the segment's size is its data: the bytes a
    // batch adds are the growth of the file.
    let options = DiskOptions::default().with_preallocate_segments(false);
    let mut store = DiskStore::open(dir.path(), options).expect("open");
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

/// `fallocate(fd, 0, 0, len)`: allocated, zero-filled space.
fn fallocate(file: &File, len: u64) {
    // SAFETY: fallocate on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
}

/// A file preallocated like a store segment, overwritten from the front.
struct PreallocatedFile {
    dir: PathBuf,
    file: File,
    offset: u64,
    files: u64,
}

impl PreallocatedFile {
    fn new(dir: &Path) -> PreallocatedFile {
        let mut file = PreallocatedFile {
            dir: dir.to_path_buf(),
            file: File::open("/dev/null").expect("placeholder"),
            offset: 0,
            files: 0,
        };
        file.next_file();
        file
    }

    /// A fresh preallocated file, as the store's rotation makes one.
    fn next_file(&mut self) {
        let path = self.dir.join(format!("bare-{}.log", self.files));
        if self.files > 0 {
            std::fs::remove_file(self.dir.join(format!("bare-{}.log", self.files - 1)))
                .expect("remove");
        }
        self.files += 1;
        self.file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(path)
            .expect("open");
        fallocate(&self.file, SEGMENT_BYTES);
        self.file.sync_all().expect("fsync");
        self.offset = 0;
    }

    fn write_and_sync(&mut self, bytes: &[u8]) {
        if self.offset + bytes.len() as u64 > SEGMENT_BYTES {
            self.next_file();
        }
        self.file.write_all_at(bytes, self.offset).expect("write");
        self.offset += bytes.len() as u64;
        self.file.sync_data().expect("fdatasync");
    }
}

fn store_appends(b: &mut criterion::Bencher<'_>, batch: usize, options: DiskOptions) {
    let dir = bench_dir();
    let mut store = DiskStore::open(dir.path(), options).expect("open");
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
            |b, &batch| store_appends(b, batch, DiskOptions::default()),
        );

        group.bench_with_input(
            BenchmarkId::new("disk_store_appending", batch),
            &batch,
            |b, &batch| {
                store_appends(
                    b,
                    batch,
                    DiskOptions::default().with_preallocate_segments(false),
                )
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

        group.bench_with_input(
            BenchmarkId::new("bare_preallocated_fdatasync", batch),
            &bytes,
            |b, bytes| {
                let dir = bench_dir();
                let mut file = PreallocatedFile::new(dir.path());
                b.iter(|| file.write_and_sync(bytes));
            },
        );

        group.bench_with_input(
            BenchmarkId::new("bare_zeroed_fdatasync", batch),
            &bytes,
            |b, bytes| {
                let dir = bench_dir();
                let mut file: File = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(dir.path().join("zeroed.log"))
                    .expect("open");
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..SEGMENT_BYTES / zeros.len() as u64 {
                    file.write_all(&zeros).expect("zero fill");
                }
                file.sync_all().expect("fsync");
                let mut offset = 0;
                b.iter(|| {
                    if offset + bytes.len() as u64 > SEGMENT_BYTES {
                        offset = 0;
                    }
                    file.write_all_at(bytes, offset).expect("write");
                    offset += bytes.len() as u64;
                    file.sync_data().expect("fdatasync");
                });
            },
        );
    }
    group.finish();
}

/// Time of the batch (16 entries) that finds the active 64 MiB segment
/// full: it rotates, then is written and synced. The segment is filled
/// before each timed batch, untimed.
fn rotations(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_rotation");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.warm_up_time(Duration::from_secs(1));
    for preallocate in [true, false] {
        let name = if preallocate {
            "preallocated"
        } else {
            "appending"
        };
        group.bench_function(BenchmarkId::new("rotating_batch_16", name), |b| {
            let dir = bench_dir();
            let options = DiskOptions::default().with_preallocate_segments(preallocate);
            let mut store = DiskStore::open(dir.path(), options).expect("open");
            let filler = Bytes::from(vec![0x33u8; 1 << 20]);
            let mut next = 1;
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // Fill the active segment with 1 MiB entries until the
                    // next one would not fit, then sync (untimed).
                    let segments = store.segment_seqs().len();
                    for _ in 0..63 {
                        let entry = [Entry {
                            index: next,
                            epoch: 1,
                            payload: Payload::Command(filler.clone()),
                        }];
                        next += 1;
                        store
                            .write(&WriteBatch {
                                hard_state: None,
                                truncate_from: None,
                                append: &entry,
                                snapshot: None,
                            })
                            .expect("write");
                    }
                    store.sync().expect("sync");
                    assert_eq!(store.segment_seqs().len(), segments, "filled too far");
                    let append = entries(16, next);
                    next += 16;
                    let started = Instant::now();
                    store
                        .write(&WriteBatch {
                            hard_state: None,
                            truncate_from: None,
                            append: &append,
                            snapshot: None,
                        })
                        .expect("write");
                    store.sync().expect("sync");
                    timed += started.elapsed();
                    assert_eq!(store.segment_seqs().len(), segments + 1, "no rotation");
                    // Keep one segment: a snapshot covering everything
                    // compacts the sealed ones.
                }
                timed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, durable_appends, rotations);
criterion_main!(benches);
