//! The durable store: a segmented write-ahead log (WAL) with CRC32C records,
//! group commit, atomic snapshot files and a metadata checkpoint.
//!
//! # Directory layout
//!
//! ```text
//! <dir>/
//!   LOCK                          flock'ed while a DiskStore has the directory open
//!   IDENTITY                      format version, node id, cluster id (written once)
//!   META                          hard-state checkpoint, first live segment,
//!                                 index the last compaction relied on
//!   00000000000000000007.wal      WAL segments, by sequence number, contiguous
//!   00000000000000000008.wal      (the highest one is the active segment,
//!                                 preallocated: its data, then zeros)
//!   snap-00000000000000004096.snap  the snapshot (by index; briefly two)
//!   IDENTITY.tmp, META.tmp, snap-*.snap.tmp   being written; deleted on open
//! ```
//!
//! `IDENTITY`, `META` and snapshot files are only ever written as a temp
//! file, fsynced, renamed into place, and the directory fsynced: after a
//! crash each holds its old or its new content, never a mix. They carry a
//! magic, a length and a CRC32C; a bad one is [`StorageError::Corrupt`]
//! (they cannot be torn, so damage is bit rot). A directory without
//! `IDENTITY` that holds other files, or whose identity names a format
//! version this build does not read (below), another node or another
//! cluster, is [`StorageError::Mismatch`].
//!
//! # Segments and records
//!
//! A segment starts with a 32-byte header (magic, format version, sequence
//! number, the length the previous segment was sealed at, CRC32C; layout in
//! `segment.rs`). Records follow back to back:
//!
//! ```text
//! length u32 | length check u32 | crc32c(length ++ body) u32 | body
//! ```
//!
//! The length check (`crc32c(length) ^ salt`) makes a damaged length field
//! detectable on its own, so a corrupted length is never trusted, and the
//! scan described below can test every byte offset cheaply. The body starts
//! with a type byte: `Entries`, `Truncate`, `HardState`, `SnapshotMarker`
//! or `SyncMark` (layouts in `record.rs`, hand-rolled little-endian).
//!
//! [`LogStore::write`](consensus_api::LogStore::write) encodes a whole
//! [`WriteBatch`](consensus_api::WriteBatch) (snapshot marker, truncation,
//! entries, hard state: the order of [`LogState::apply`](crate::LogState::apply))
//! into one buffer and writes it at the active segment's write offset with
//! one `pwrite` system call.
//! [`LogStore::sync`](consensus_api::LogStore::sync) issues one `fdatasync`
//! for everything written since the previous sync: group commit.
//!
//! # Preallocation
//!
//! A segment is created at its full size, [`DiskOptions::segment_bytes_max`],
//! with `fallocate(2)` (unless
//! [`DiskOptions::preallocate_segments`] is off or the file system cannot:
//! then it grows by appending). Batches overwrite the zero-filled space
//! from the front, so a group commit's `fdatasync` writes the data and no
//! new file size: on ext4 on this project's VMs that is the difference
//! between ~0.1 ms and several ms per commit (the `wal` bench). The
//! **write offset**, not the file size, says where the data ends and when
//! the segment is full; a batch is never split, so a segment may exceed
//! the limit by one oversized batch (the file then grows).
//!
//! When the next batch would take the active segment's data past
//! [`DiskOptions::segment_bytes_max`], the store first **rotates**, in
//! steps that are each a crash point ([`CrashPoint`]`::Rotation*`):
//!
//! 1. the active segment is fdatasync'ed (a sealed segment is complete);
//! 2. it is **trimmed** to its data length and fsynced: a sealed segment
//!    never carries a zero tail, so a bad record in it is always
//!    corruption (below);
//! 3. the next segment is created: header written (recording the length
//!    the sealed segment was trimmed to), preallocated, fsynced;
//! 4. the directory is fsynced; the new segment is active.
//!
//! A crash before step 2 is durable leaves the full segment as the last
//! one, zero tail included: recovery finds the end of its data and it
//! stays active until the next batch rotates again. The next segment can
//! only exist once the trim is durable (step 2 completes with an fsync
//! before step 3 starts); if its header did not become durable, recovery
//! rewrites it. Recovery re-establishes the preallocation of the active
//! segment when it is shorter than the limit (best effort: a full disk
//! must not stop a store from opening).
//!
//! # Hard state: WAL record plus checkpoint (as etcd's WAL does)
//!
//! A hard state (term and vote, a Paxos promise) may change on every
//! message, so it is a WAL record: it rides in the same write and the same
//! `fdatasync` as the entries of its batch, at no extra cost. Its durable
//! value is the last `HardState` record in the live segments. Compaction
//! deletes whole segments, which could delete the only record of the
//! current hard state, so **before** deleting any segment the store
//! rewrites `META` (temp + fsync + rename + directory fsync) with the latest
//! hard state, which is synced at that point. Recovery takes the last
//! `HardState` record of the live segments, or `META`'s when there is none.
//! Any record still in a live segment is at least as new as the checkpoint,
//! so the rule always yields the newest synced hard state. etcd's WAL does
//! the same: each new WAL file starts with the current `HardState`, and its
//! snapshot records carry the hard state at the time.
//!
//! # Snapshots and compaction
//!
//! A snapshot (from [`LogStore::save_snapshot`](consensus_api::LogStore::save_snapshot)
//! or in `WriteBatch::snapshot`, from a leader) is installed in these
//! steps, each a possible crash point ([`CrashPoint`] under the
//! `failpoints` feature):
//!
//! 1. everything written before is fdatasync'ed (a snapshot never
//!    overtakes earlier writes);
//! 2. `snap-<index>.snap.tmp` is written and fsynced;
//! 3. it is renamed to `snap-<index>.snap`; 4. the directory is fsynced;
//! 5. compaction: `META` is rewritten (hard state checkpoint, new first
//!    segment, `compacted_through` = the snapshot index);
//! 6. the sealed segments whose entries are all <= the snapshot index are
//!    deleted, oldest first, and the directory fsynced;
//! 7. the previous snapshot file is deleted, the directory fsynced;
//! 8. a `SnapshotMarker` record is appended to the WAL with the rest of the
//!    batch.
//!
//! Recovery uses the snapshot file with the highest index (a complete,
//! renamed file: temp files are never considered), deletes older snapshot
//! files and segments below `META`'s first segment (finishing an
//! interrupted compaction), and requires the snapshot to cover
//! `compacted_through` and every `SnapshotMarker` in the log. So a crash
//! between any two steps leaves the old snapshot with its full log (before
//! step 3 is durable) or the new snapshot with the log above it (after).
//! The newest snapshot failing its checksum is `Corrupt`: falling back to
//! an older one could silently lose the entries between the two.
//!
//! Replay applies the snapshot first and then the records. That equals
//! applying it where its marker sits: a snapshot only drops entries <= its
//! index, records after a snapshot never store such entries (the batch
//! validation refuses them), and truncations act the same on the entries
//! above it. A segment can be deleted once every entry it (and every older
//! segment) holds is <= the snapshot index: replaying the remaining
//! segments from an empty log then gives the same entries above the
//! snapshot.
//!
//! # Recovery: torn tail or corruption
//!
//! Records of one segment are read in order. The first record that fails
//! (header shorter than 12 bytes, length check failed, body past the end of
//! the file, checksum mismatch) is a **bad record** at offset `O`:
//!
//! * In a sealed (not the last) segment it is always corruption: sealed
//!   segments were fdatasync'ed whole and trimmed to their data before the
//!   next one was created, so even zeros there are damage.
//! * A sealed segment must also be exactly as long as the header of the
//!   segment after it says it was sealed at. A sealed segment that lost
//!   whole records at its end (cut at a record boundary) has no bad record
//!   of its own and would otherwise read as complete, returning the records
//!   on both sides of the hole (for sparse Paxos logs: accepted values
//!   silently lost); shorter (or longer) than recorded is corruption.
//! * In the last segment:
//!   1. **every byte from `O` to the end of the file is zero**: the end of
//!      the data. This is the normal case: the preallocated space after the
//!      last record (or an unsynced write that never reached the disk).
//!      Nothing is cut; the next batch is written at `O`. Checking it costs
//!      one pass over the bytes after `O` (a 64-byte block at a time), and
//!      the never-written part of a preallocated file is not even read:
//!      the file system reports it as a hole (`SEEK_HOLE`), which reads as
//!      zeros by definition.
//!   2. otherwise every byte offset after `O` is tested for a valid record
//!      (length check and checksum; an offset whose 4-byte length field is
//!      zero is never valid, so runs of zeros are skipped without trying
//!      them), and if **no valid record follows**: a torn tail (a crash
//!      mid-write left part of a record, or garbage, after the last good
//!      record). The file is truncated to `O` and fsynced (and
//!      preallocated again when opened); recovery returns every record
//!      before `O`.
//!   3. a valid record follows, and some later `SyncMark` record says the
//!      segment had been synced past `O`: **corruption** of synced data.
//!      So zeros (a zero "header") followed by synced data are corruption,
//!      never the end.
//!   4. a valid record follows, no sync mark proves `O` synced, and between
//!      `O` and the next valid record lies a whole 512-byte-aligned sector
//!      of zeros: a torn tail — after a power loss the page cache can
//!      write back later pages of an unsynced write but not earlier ones,
//!      leaving a never-written hole. Truncated at `O` as in 2.
//!   5. otherwise: **corruption** (bit rot before valid data).
//!
//! A record's bytes are what decides, not how many of them a write got
//! through: in preallocated space the unwritten rest of a record reads as
//! zeros, so a record whose last bytes are zeros is whole (byte for byte
//! the record that was written) as soon as its last non-zero byte is.
//!
//! Corruption is [`StorageError::Corrupt`] with the segment path and `O`;
//! it is never skipped. A record whose checksum is valid but whose body
//! does not decode is corruption wherever it is.
//!
//! A `SyncMark { synced_offset }` is written as the first record of a batch
//! when a sync happened since the previous mark: it states that the first
//! `synced_offset` bytes of its segment were durable before it was written.
//! So damage to any batch followed by a later batch is reported, even when
//! it looks like a hole. What the rule cannot tell apart (documented
//! limits, in the safe direction where possible):
//!
//! * a flipped bit in the **last** record, or in the last batch when no
//!   later batch exists, looks exactly like a torn write: it is cut (the
//!   contract allows losing an unsynced tail; if it had been synced, no
//!   format without a second fsync could know);
//! * damage plus a zero-filled sector inside the last synced batch, with no
//!   later batch, is treated as torn; so is the last synced batch zeroed
//!   entirely (rule 1: it looks exactly like preallocated space);
//! * a payload that itself contains the bytes of a valid framed record can
//!   make a torn tail look like corruption (the node then refuses to start
//!   rather than lose data).
//!
//! Before returning, recovery fdatasyncs the last segment, because records
//! that were written but unsynced before a process crash are now returned
//! and must not be lost by a later power failure.
//!
//! # Format versions
//!
//! `IDENTITY` names the format version of the directory. This build
//! writes version 2 and reads versions 1 and 2; anything else is
//! [`StorageError::Mismatch`] naming the version. Version 2 differs only in
//! the segment header, which records the previous segment's sealed length.
//! A version 1 directory is upgraded when opened: `IDENTITY` is rewritten
//! (atomically) to version 2 before anything else is written, so a version 1
//! build then refuses the directory with a `Mismatch` instead of misreading
//! it; its existing segments are left as they are and read with their
//! version 1 headers, and every segment created from then on is version 2.
//! A sealed segment is held to its length once a version 2 header follows
//! it, so only a version 1 segment followed by another version 1 segment
//! (sealed before the upgrade) lacks the check; such segments are deleted
//! by compaction in the normal course. A version 1 header after a version 2
//! segment is corruption (no build writes one).
//!
//! # Errors
//!
//! `ENOSPC` (and `EDQUOT`) is [`StorageError::DiskFull`], other system
//! errors [`StorageError::Io`]. After any failed write, fsync or snapshot
//! step the store answers [`StorageError::Failed`] to every call: a failed
//! `fsync` is never retried (the kernel may have dropped the dirty pages).
//! Reopening recovers exactly what was synced (plus whole records written
//! after it). No disk content makes the store panic.
//!
//! [`StorageError::Corrupt`]: consensus_api::StorageError::Corrupt
//! [`StorageError::Mismatch`]: consensus_api::StorageError::Mismatch
//! [`StorageError::DiskFull`]: consensus_api::StorageError::DiskFull
//! [`StorageError::Io`]: consensus_api::StorageError::Io
//! [`StorageError::Failed`]: consensus_api::StorageError::Failed

mod codec;
mod failpoint;
mod frame;
mod fsio;
mod identity;
mod image;
mod meta;
mod options;
mod prealloc;
mod record;
mod recovery;
mod scan;
mod segment;
mod snapshot_file;
mod store;

pub use failpoint::CrashPoint;
pub use options::DiskOptions;
pub use store::DiskStore;

/// Preallocates `len` bytes of `file` from offset 0 with `fallocate(2)`, as
/// the store does for each segment. `Ok(false)` when the file system (or
/// platform) cannot preallocate. Public so that measurements of the disk
/// (the bench crate's fdatasync floor) time the same kind of write the
/// store makes: an overwrite of preallocated space.
pub fn preallocate(file: &std::fs::File, len: u64) -> std::io::Result<bool> {
    match prealloc::allocate(file, 0, len) {
        Ok(()) => Ok(true),
        Err(error) if prealloc::is_unsupported(&error) => Ok(false),
        Err(error) => Err(error),
    }
}
