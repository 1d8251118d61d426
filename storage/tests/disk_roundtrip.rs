//! The disk store keeps exactly the semantics of `LogState` across reopen:
//! entries, truncation, overwrite, sparse indices, hard state, snapshots;
//! and a seeded random history gives the same `load()` as `MemStore`.

mod common;

use common::*;
use consensus_api::{Bytes, LogStore, Membership, Payload, StorageError, WriteBatch};
use consensus_storage::{DiskOptions, DiskStore, LogState, MemStore};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn entries_truncation_overwrite_and_hard_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = LogState::default();
    {
        let mut store = open(dir.path());
        assert_eq!(store.load().unwrap(), Default::default());
        let mut replace = Batch::append(entries(3..=4, 2));
        replace.truncate_from = Some(3);
        replace.hard_state = Some(Bytes::from_static(b"term=2 vote=1"));
        write_synced(
            &mut store,
            &mut expected,
            &[
                Batch::append(entries(1..=5, 1)),
                Batch::hard_state("term=1 vote=3"),
                replace,
                // Overwrite without truncation replaces the same index only.
                Batch::append(vec![entry_with(4, 3, b"overwritten")]),
                Batch {
                    append: vec![
                        Entry {
                            index: 5,
                            epoch: 3,
                            payload: Payload::Membership(Membership::with_learners([1, 2], [3])),
                        },
                        Entry {
                            index: 6,
                            epoch: 3,
                            payload: Payload::Noop,
                        },
                    ],
                    ..Batch::default()
                },
            ],
        );
        assert_eq!(
            store.load().unwrap(),
            initial(&expected),
            "read back before reopen"
        );
    }
    let mut store = open(dir.path());
    let loaded = store.load().unwrap();
    assert_eq!(loaded, initial(&expected));
    assert_eq!(loaded.entries.len(), 6);
    assert_eq!(loaded.entries[3], entry_with(4, 3, b"overwritten"));
    assert_eq!(
        loaded.hard_state,
        Some(Bytes::from_static(b"term=2 vote=1"))
    );
}

use consensus_api::Entry;

#[test]
fn sparse_paxos_slots_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = LogState::default();
    {
        let mut store = open(dir.path());
        write_synced(
            &mut store,
            &mut expected,
            &[
                Batch::append(vec![entry(7, 1), entry(3, 1)].into_iter().rev().collect()),
                Batch::append(vec![entry(100, 2)]),
                Batch::append(vec![entry(5, 1), entry(7, 4)]),
                Batch {
                    truncate_from: Some(50),
                    ..Batch::default()
                },
            ],
        );
    }
    let mut store = open(dir.path());
    let loaded = store.load().unwrap();
    assert_eq!(loaded, initial(&expected));
    let indices: Vec<u64> = loaded.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, vec![3, 5, 7]);
    assert_eq!(loaded.entries[2].epoch, 4);
}

#[test]
fn snapshots_from_save_and_from_a_leader_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = LogState::default();
    {
        let mut store = open(dir.path());
        write_synced(
            &mut store,
            &mut expected,
            &[Batch::append(entries(1..=10, 1))],
        );
        store.save_snapshot(&snapshot(4, 1)).unwrap();
        expected.apply_snapshot(&snapshot(4, 1));
        // An older snapshot is ignored.
        store.save_snapshot(&snapshot(2, 1)).unwrap();
        expected.apply_snapshot(&snapshot(2, 1));
        assert_eq!(store.load().unwrap(), initial(&expected));
    }
    {
        let mut store = open(dir.path());
        assert_eq!(store.load().unwrap(), initial(&expected));
        // A leader's snapshot beyond the log, with entries after it.
        let leader = Batch {
            snapshot: Some(snapshot(20, 3)),
            append: entries(21..=22, 3),
            hard_state: Some(Bytes::from_static(b"term=3")),
            ..Batch::default()
        };
        write_synced(&mut store, &mut expected, &[leader]);
        assert!(matches!(
            store.write(&WriteBatch {
                hard_state: None,
                truncate_from: None,
                append: &[entry(20, 3)],
                snapshot: None
            }),
            Err(StorageError::InvalidWrite(_))
        ));
    }
    let mut store = open(dir.path());
    let loaded = store.load().unwrap();
    assert_eq!(loaded, initial(&expected));
    assert_eq!(loaded.snapshot.as_ref().map(|s| s.index), Some(20));
    assert_eq!(
        files_with_suffix(dir.path(), ".snap"),
        vec![format!("snap-{:020}.snap", 20)]
    );
}

#[test]
fn group_commit_is_one_fdatasync_per_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    for index in 1..=10 {
        store
            .write(&Batch::append(vec![entry(index, 1)]).as_batch())
            .unwrap();
    }
    store.sync().unwrap();
    assert_eq!(store.sync_count(), 1);
    store.sync().unwrap();
    assert_eq!(store.sync_count(), 1, "nothing new to sync");
    store.write(&Batch::hard_state("x").as_batch()).unwrap();
    store.sync().unwrap();
    assert_eq!(store.sync_count(), 2);
}

#[test]
fn rotation_creates_segments_and_reopen_reads_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = LogState::default();
    {
        let mut store = DiskStore::open(dir.path(), options(600)).unwrap();
        let batches: Vec<Batch> = (1..=40).map(|i| Batch::append(vec![entry(i, 1)])).collect();
        write_synced(&mut store, &mut expected, &batches);
        assert!(
            store.segment_seqs().len() >= 5,
            "{:?}",
            store.segment_seqs()
        );
    }
    assert!(segment_files(dir.path()).len() >= 5);
    let mut store = DiskStore::open(dir.path(), options(600)).unwrap();
    assert_eq!(store.load().unwrap(), initial(&expected));
}

#[test]
fn identity_mismatch_and_foreign_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(DiskStore::open(dir.path(), DiskOptions::for_node(1, "alpha")).unwrap());
    for (options, what) in [
        (DiskOptions::for_node(2, "alpha"), "node"),
        (DiskOptions::for_node(1, "beta"), "cluster"),
    ] {
        match DiskStore::open(dir.path(), options) {
            Err(StorageError::Mismatch(message)) => assert!(message.contains(what), "{message}"),
            other => panic!("expected a mismatch on {what}, got {other:?}"),
        }
    }
    DiskStore::open(dir.path(), DiskOptions::for_node(1, "alpha")).unwrap();
    DiskStore::open(dir.path(), DiskOptions::default()).unwrap();

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), b"not a store").unwrap();
    assert!(matches!(
        DiskStore::open(foreign.path(), DiskOptions::default()),
        Err(StorageError::Mismatch(_))
    ));

    let empty = tempfile::tempdir().unwrap();
    let no_create = DiskOptions {
        create_if_missing: false,
        ..DiskOptions::default()
    };
    assert!(matches!(
        DiskStore::open(empty.path(), no_create),
        Err(StorageError::Mismatch(_))
    ));
}

#[test]
fn a_newer_format_version_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    // IDENTITY: magic (8) | len u32 | crc u32 | body: format version u32 ...
    let path = dir.path().join("IDENTITY");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16] = 99;
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), &bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    match DiskStore::open(dir.path(), DiskOptions::default()) {
        Err(StorageError::Mismatch(message)) => {
            assert!(message.contains("version 99"), "{message}")
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}

#[test]
fn two_stores_never_share_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    assert!(matches!(
        DiskStore::open(dir.path(), DiskOptions::default()),
        Err(StorageError::Io { op: "locking", .. })
    ));
    drop(first);
    open(dir.path());
}

/// One step of a random history.
fn random_batch(rng: &mut ChaCha8Rng, state: &LogState) -> Batch {
    let floor = state.snapshot_index();
    let last = state.last_index();
    let mut batch = Batch::default();
    if rng.random_bool(0.1) {
        let index = rng.random_range(floor..=last + 8);
        batch.snapshot = Some(snapshot(index, rng.random_range(1..5)));
    }
    let floor = batch
        .snapshot
        .as_ref()
        .map_or(floor, |s| s.index.max(floor));
    if rng.random_bool(0.15) {
        batch.truncate_from = Some(rng.random_range(floor.saturating_sub(2)..=last.max(floor) + 2));
    }
    if rng.random_bool(0.7) {
        let epoch = rng.random_range(1..6);
        let count = rng.random_range(1..6);
        let mut index = if rng.random_bool(0.8) {
            // Dense: continue the log, or overwrite its tail.
            rng.random_range(last.saturating_sub(3)..=last + 1)
                .max(floor + 1)
        } else {
            // Sparse, classic Paxos style.
            floor + rng.random_range(1..40)
        };
        for _ in 0..count {
            let size = rng.random_range(0..300);
            batch
                .append
                .push(entry_with(index, epoch, &vec![rng.random::<u8>(); size]));
            index += rng.random_range(1..3);
        }
    }
    if rng.random_bool(0.3) {
        batch.hard_state = Some(Bytes::from(format!("hs-{}", rng.random::<u32>())));
    }
    batch
}

fn equivalence_run(seed: u64, steps: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let options = options(rng.random_range(300..3000));
    let mut disk = DiskStore::open(dir.path(), options.clone()).unwrap();
    let mut mem = MemStore::new();
    let mut reopens = 0;
    for step in 0..steps {
        let choice = rng.random_range(0..100);
        if choice < 60 {
            let batch = random_batch(&mut rng, &mem.volatile());
            disk.write(&batch.as_batch()).unwrap();
            mem.write(&batch.as_batch()).unwrap();
        } else if choice < 80 {
            disk.sync().unwrap();
            mem.sync().unwrap();
        } else if choice < 85 {
            let volatile = mem.volatile();
            let index = rng.random_range(volatile.snapshot_index()..=volatile.last_index() + 1);
            let snap = snapshot(index, 2);
            disk.save_snapshot(&snap).unwrap();
            mem.save_snapshot(&snap).unwrap();
        } else if choice < 92 {
            assert_eq!(
                disk.load().unwrap(),
                mem.volatile().to_initial_state(),
                "seed {seed} step {step}: read back"
            );
        } else {
            // Process crash: written bytes stay in the page cache.
            drop(disk);
            mem.crash_keeping(mem.unsynced_batches());
            disk = DiskStore::open(dir.path(), options.clone()).unwrap();
            assert_eq!(
                disk.load().unwrap(),
                mem.load().unwrap(),
                "seed {seed} step {step}: after reopen"
            );
            reopens += 1;
        }
    }
    disk.sync().unwrap();
    mem.sync().unwrap();
    drop(disk);
    let mut disk = DiskStore::open(dir.path(), options).unwrap();
    assert_eq!(
        disk.load().unwrap(),
        mem.load().unwrap(),
        "seed {seed}: final"
    );
    assert!(reopens > 0, "seed {seed} never reopened");
}

#[test]
fn random_histories_match_the_in_memory_store() {
    for seed in 1..=6 {
        equivalence_run(seed, 250);
    }
}
