//! No disk content makes the store panic: seeded random damage to every
//! kind of file (segments, META, IDENTITY, snapshots, stray files with
//! store-like names) gives `Ok` or a typed error from `open` and `load`.

mod common;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::*;
use consensus_api::LogStore;
use consensus_storage::{DiskStore, LogState};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn build(dir: &Path) {
    let mut store = DiskStore::open(dir, options(400)).unwrap();
    let mut state = LogState::default();
    let mut batches = vec![Batch::hard_state("term=1")];
    batches.extend((1..=20).map(|i| Batch::append(vec![entry(i, 1)])));
    write_synced(&mut store, &mut state, &batches);
    store.save_snapshot(&snapshot(8, 1)).unwrap();
    let more: Vec<Batch> = (21..=25)
        .map(|i| Batch::append(vec![entry(i, 1)]))
        .collect();
    write_synced(&mut store, &mut state, &more);
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn damage(rng: &mut ChaCha8Rng, dir: &Path) {
    let files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("LOCK"))
        .collect();
    let file = &files[rng.random_range(0..files.len())];
    let mut bytes = fs::read(file).unwrap();
    match rng.random_range(0..7) {
        0 if !bytes.is_empty() => {
            let at = rng.random_range(0..bytes.len());
            let len = rng.random_range(1..64).min(bytes.len() - at);
            rng.fill(&mut bytes[at..at + len]);
        }
        1 => bytes.truncate(rng.random_range(0..=bytes.len())),
        2 if !bytes.is_empty() => {
            for _ in 0..rng.random_range(1..4) {
                let bit = rng.random_range(0..bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
        }
        3 => bytes.extend((0..rng.random_range(1..2000)).map(|_| rng.random::<u8>())),
        4 => bytes.clear(),
        5 => {
            fs::remove_file(file).unwrap();
            return;
        }
        _ => {
            // A stray file with a store-like name.
            let name = match rng.random_range(0..4) {
                0 => format!("{:020}.wal", rng.random_range(0..8u64)),
                1 => format!("{:020}.wal", u64::MAX),
                2 => format!("snap-{:020}.snap", rng.random::<u64>()),
                _ => "META.tmp".to_string(),
            };
            let junk: Vec<u8> = (0..rng.random_range(0..300))
                .map(|_| rng.random())
                .collect();
            fs::write(dir.join(name), junk).unwrap();
            return;
        }
    }
    fs::write(file, bytes).unwrap();
}

#[test]
fn random_damage_never_panics() {
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path());
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let (mut opened, mut refused) = (0, 0);
    for round in 0..300 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        for _ in 0..rng.random_range(1..4) {
            damage(&mut rng, dir.path());
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            DiskStore::open(dir.path(), options(400)).and_then(|mut store| store.load())
        }));
        match outcome {
            Ok(Ok(_)) => opened += 1,
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("round {round} panicked (seed 0x5eed)"),
        }
    }
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}"
    );
}

#[test]
fn a_snapshot_at_the_largest_index_does_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut state = LogState::default();
    write_synced(&mut store, &mut state, &[Batch::append(entries(1..=3, 1))]);
    store.save_snapshot(&snapshot(u64::MAX, 1)).unwrap();
    drop(store);
    let loaded = open(dir.path()).load().unwrap();
    assert_eq!(loaded.snapshot.map(|s| s.index), Some(u64::MAX));
    assert!(loaded.entries.is_empty());
}
