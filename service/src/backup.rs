//! Backup and restore: `snapshot save FILE` and `snapshot restore FILE`,
//! the same in every service's binary and for every protocol.
//!
//! # What a backup is
//!
//! The state machine's own state (for the key-value store: keys, values and
//! the client session table; for the coordination service: its tree,
//! sessions and watches) at one applied index, taken **after a read
//! barrier** on the node that answers, so it holds every write
//! acknowledged before `snapshot save` started. Nothing of the protocol is
//! in it (no term, ballot, epoch, zxid or log): the same file restores into
//! a cluster of any protocol, which is how a backend is swapped under the
//! data. The replicated address book of members added at run time is left
//! out too: the restored cluster's members are those of its own cluster
//! file.
//!
//! # File format (version 1)
//!
//! ```text
//! "CNSNAP" 0x00 0x01 | header length u32 LE | header (postcard) | data | CRC32C u32 LE
//! ```
//!
//! The CRC covers every byte before it; the header ([`BackupHeader`]) says
//! which service wrote the file, from which cluster and protocol, at which
//! index, and how long the data is. A file that is truncated, extended,
//! altered anywhere, of another service or of an unknown version is
//! refused with a [`BackupFileError`] that says which.
//!
//! # Restore
//!
//! [`restore_node`] seeds the empty data directory of one node of a **new**
//! cluster: it stores the protocol's seed snapshot
//! ([`Protocol::seed_snapshot`]) holding the data at the backup's index,
//! with the voters of the new cluster file as its membership. Run it for
//! every node of the new cluster (same file, same cluster file), then start
//! the nodes: their log continues at `index + 1` under the protocol's first
//! term or epoch. A directory that already holds data is refused: restore
//! never overwrites a node.
//!
//! # Taking a backup over the network
//!
//! A node answers a [`BackupRequest`] with the operator secret of the
//! cluster file's `[operator] token_file` (the same as membership changes:
//! a backup reveals every value). `Start` takes the snapshot and keeps the
//! encoded file in memory (one per node, the newest); `Chunk` returns a
//! piece of it, so a file of any size moves in frames of
//! [`BACKUP_CHUNK_BYTES`]. [`fetch`] drives the exchange from a client.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use consensus::{
    ClientError, ConsensusNode, LogIndex, LogStore, Membership, NodeId, Protocol, ReadConsistency,
    RecoverError, ReplicatedLog,
};
use consensus_storage::{DiskOptions, DiskStore};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::ClusterConfig;
use crate::members::same_secret;

/// The first bytes of every backup file: "CNSNAP", then format version 1.
pub const MAGIC: [u8; 8] = *b"CNSNAP\x00\x01";

/// Largest header a file may declare (the header is a few dozen bytes).
const HEADER_BYTES_MAX: usize = 64 << 10;

/// Bytes per [`BackupCommand::Chunk`] answer (below every service's frame
/// limit).
pub const BACKUP_CHUNK_BYTES: usize = 1 << 20;

/// The query a [`WithDirectory`](crate::members::WithDirectory) state
/// machine answers with a [`MachineSnapshot`] instead of passing it to the
/// inner state machine. No service query starts with these bytes (postcard
/// enum tags are small varints; `0xff 0xff ...` is none of them).
pub const SNAPSHOT_QUERY: &[u8] = b"\xff\xff\xffconsensus-service/snapshot";

/// The answer to [`SNAPSHOT_QUERY`]: the inner state machine's snapshot and
/// the index of the last command it applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSnapshot {
    /// The last index applied to the state machine (0: none).
    pub index: LogIndex,
    /// The inner state machine's snapshot.
    pub data: Bytes,
}

/// What a backup file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The service whose state machine wrote the data (`"kv"`, `"coord"`).
    pub service: String,
    /// The cluster it was taken from.
    pub cluster_id: String,
    /// The protocol that cluster ran (for information: the data does not
    /// depend on it).
    pub protocol: String,
    /// The node that took it.
    pub node: NodeId,
    /// The applied index the data is at.
    pub index: LogIndex,
    /// When it was taken (milliseconds since the Unix epoch).
    pub taken_at_unix_ms: u64,
    /// Length of the data that follows the header.
    pub data_len: u64,
}

/// A decoded, checked backup file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    /// What the file says about itself.
    pub header: BackupHeader,
    /// The state machine's snapshot.
    pub data: Bytes,
}

/// Why a backup file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackupFileError {
    /// It does not start with [`MAGIC`].
    #[error("not a consensus backup file (it does not start with the CNSNAP header)")]
    NotABackup,
    /// A backup of a format this build does not know.
    #[error(
        "backup format version {0}: this build reads version 1; use the release that wrote it"
    )]
    Version(u8),
    /// It ends before the length its header declares.
    #[error("truncated: {expected} bytes expected, {found} present (copy the file again)")]
    Truncated {
        /// Length the header implies.
        expected: u64,
        /// Length of the file.
        found: u64,
    },
    /// Bytes after the end the header declares.
    #[error("{extra} bytes after the end of the backup (not a backup file, or two files joined)")]
    Trailing {
        /// How many.
        extra: u64,
    },
    /// The checksum does not match: the file changed after it was written.
    #[error(
        "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt"
    )]
    Checksum {
        /// CRC32C in the file.
        stored: u32,
        /// CRC32C of its bytes.
        computed: u32,
    },
    /// The header does not decode.
    #[error("the header does not decode: {0}")]
    Header(String),
    /// A backup of another service.
    #[error("a backup of `{found}`, not of `{expected}`: restore it with consensus-{found}")]
    WrongService {
        /// The service restoring.
        expected: String,
        /// The service in the file.
        found: String,
    },
    /// The data does not restore into the service's state machine.
    #[error("the data does not restore into the state machine: {0}")]
    Data(String),
}

impl BackupFile {
    /// Encodes the file: magic, header, data, CRC32C.
    pub fn encode(&self) -> Bytes {
        let header = postcard::to_allocvec(&self.header).expect("encoding to a Vec cannot fail");
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + self.data.len() + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.data);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Bytes::from(out)
    }

    /// Decodes and checks a file's bytes.
    pub fn decode(bytes: &[u8]) -> Result<BackupFile, BackupFileError> {
        let found = bytes.len() as u64;
        if bytes.len() < MAGIC.len() || bytes[..6] != MAGIC[..6] {
            return Err(BackupFileError::NotABackup);
        }
        if bytes[6..8] != MAGIC[6..8] {
            return Err(BackupFileError::Version(bytes[7]));
        }
        let rest = &bytes[MAGIC.len()..];
        let truncated = |expected: u64| BackupFileError::Truncated { expected, found };
        let Some(len) = rest.get(..4) else {
            return Err(truncated(MAGIC.len() as u64 + 4));
        };
        let header_len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        if header_len > HEADER_BYTES_MAX {
            return Err(BackupFileError::Header(format!(
                "declared length {header_len} above {HEADER_BYTES_MAX}"
            )));
        }
        let header_end = MAGIC.len() + 4 + header_len;
        let Some(header_bytes) = bytes.get(MAGIC.len() + 4..header_end) else {
            return Err(truncated(header_end as u64 + 4));
        };
        let header: BackupHeader = postcard::from_bytes(header_bytes).map_err(|e| {
            // A flipped bit in the header is corruption, not a format
            // problem: say so when the checksum disagrees too.
            match checksum_error(bytes) {
                Some(error) => error,
                None => BackupFileError::Header(e.to_string()),
            }
        })?;
        let expected = (header_end as u64)
            .checked_add(header.data_len)
            .and_then(|n| n.checked_add(4))
            .ok_or_else(|| BackupFileError::Header("data length overflows".into()))?;
        if found < expected {
            return Err(truncated(expected));
        }
        if found > expected {
            return Err(BackupFileError::Trailing {
                extra: found - expected,
            });
        }
        if let Some(error) = checksum_error(bytes) {
            return Err(error);
        }
        let data_end = bytes.len() - 4;
        Ok(BackupFile {
            header,
            data: Bytes::copy_from_slice(&bytes[header_end..data_end]),
        })
    }

    /// Reads and checks a file.
    pub fn read(path: &Path) -> Result<BackupFile, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        BackupFile::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the file durably (temporary file, fsync, rename, directory
    /// fsync), so a crash never leaves half a backup under `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".into());
        let temp = dir.join(format!(".{name}.partial"));
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&self.encode())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    }
}

/// The CRC error of a whole file, if its last four bytes disagree.
fn checksum_error(bytes: &[u8]) -> Option<BackupFileError> {
    let body_len = bytes.len().checked_sub(4)?;
    let stored = u32::from_le_bytes(bytes[body_len..].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&bytes[..body_len]);
    (stored != computed).then_some(BackupFileError::Checksum { stored, computed })
}

/// A backup command sent to a node.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    /// The operator secret (the content of `[operator] token_file`).
    pub token: String,
    /// What to do.
    pub command: BackupCommand,
}

impl std::fmt::Debug for BackupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::members::debug_redacted(f, "BackupRequest", &self.command)
    }
}

/// The steps of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupCommand {
    /// Take a snapshot after a read barrier and keep its file; answers
    /// with its first chunk.
    Start,
    /// A piece of the file `backup` from `offset`.
    Chunk {
        /// The id the `Start` answer gave.
        backup: u64,
        /// Where the piece starts.
        offset: u64,
    },
}

/// A piece of a backup file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupChunk {
    /// The backup's id (for the following `Chunk` requests).
    pub backup: u64,
    /// Length of the whole file.
    pub total: u64,
    /// Where this piece starts.
    pub offset: u64,
    /// The piece.
    pub bytes: Bytes,
}

/// A node's answer to a [`BackupRequest`].
pub type BackupReply = Result<BackupChunk, BackupError>;

/// Why a node did not answer a backup request with data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum BackupError {
    /// The cluster file has no `[operator] token_file`.
    #[error("node {node}: backups are disabled (the cluster file has no `[operator] token_file`)")]
    Disabled {
        /// The node.
        node: NodeId,
    },
    /// The secret does not match.
    #[error("node {node}: wrong operator token")]
    Unauthorized {
        /// The node.
        node: NodeId,
    },
    /// This node cannot take a consistent snapshot now (not the leader, no
    /// quorum): try `leader`.
    #[error("node {node}: cannot confirm a read point ({reason})")]
    NotReady {
        /// The node.
        node: NodeId,
        /// What the consensus node said.
        reason: String,
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The backup is no longer kept (another started, or the node
    /// restarted): run `snapshot save` again.
    #[error("node {node}: backup {backup} is no longer kept (another backup started or the node restarted); run snapshot save again")]
    Expired {
        /// The node.
        node: NodeId,
        /// The id asked for.
        backup: u64,
    },
    /// A chunk offset beyond the file.
    #[error("offset {offset} beyond the backup's {total} bytes")]
    BadOffset {
        /// The offset asked for.
        offset: u64,
        /// The file's length.
        total: u64,
    },
}

/// A node's side of backups.
pub struct BackupService {
    node: Arc<ConsensusNode>,
    id: NodeId,
    service: &'static str,
    cluster_id: String,
    protocol: Protocol,
    token: Option<String>,
    current: Mutex<Option<(u64, Bytes)>>,
}

impl BackupService {
    /// The backup service of node `id` of `config` for the service named
    /// `service` (`"kv"`, `"coord"`); `token` is the operator secret
    /// (`None`: backups refused).
    pub fn new(
        node: Arc<ConsensusNode>,
        id: NodeId,
        service: &'static str,
        config: &ClusterConfig,
        token: Option<String>,
    ) -> BackupService {
        BackupService {
            node,
            id,
            service,
            cluster_id: config.cluster_id.clone(),
            protocol: config.protocol,
            token,
            current: Mutex::new(None),
        }
    }

    /// Answers one request.
    pub async fn handle(&self, request: BackupRequest) -> BackupReply {
        let Some(token) = &self.token else {
            tracing::warn!(
                node = self.id,
                "backup request refused: no [operator] token_file"
            );
            return Err(BackupError::Disabled { node: self.id });
        };
        if !same_secret(&request.token, token) {
            tracing::warn!(node = self.id, "backup request refused: wrong token");
            return Err(BackupError::Unauthorized { node: self.id });
        }
        match request.command {
            BackupCommand::Start => {
                let file = self.take().await?;
                let backup = rand::random::<u64>();
                *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((backup, file.clone()));
                Ok(chunk_of(backup, &file, 0))
            }
            BackupCommand::Chunk { backup, offset } => {
                let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
                match current.as_ref() {
                    Some((id, file)) if *id == backup => {
                        if offset > file.len() as u64 {
                            return Err(BackupError::BadOffset {
                                offset,
                                total: file.len() as u64,
                            });
                        }
                        Ok(chunk_of(backup, file, offset))
                    }
                    _ => Err(BackupError::Expired {
                        node: self.id,
                        backup,
                    }),
                }
            }
        }
    }

    /// A read barrier, then the state machine's snapshot as a file.
    async fn take(&self) -> Result<Bytes, BackupError> {
        let not_ready = |error: ClientError| BackupError::NotReady {
            node: self.id,
            leader: match &error {
                ClientError::NotLeader { hint } => *hint,
                _ => self.node.leader().filter(|l| *l != self.id),
            },
            reason: error.to_string(),
        };
        let started = Instant::now();
        let answer = self
            .node
            .read(
                Bytes::from_static(SNAPSHOT_QUERY),
                ReadConsistency::Linearizable,
            )
            .await
            .map_err(not_ready)?;
        let snapshot: MachineSnapshot = postcard::from_bytes(&answer).map_err(|e| {
            not_ready(ClientError::Invalid(format!(
                "the state machine's snapshot answer does not decode: {e}"
            )))
        })?;
        let file = BackupFile {
            header: BackupHeader {
                service: self.service.to_string(),
                cluster_id: self.cluster_id.clone(),
                protocol: self.protocol.name().to_string(),
                node: self.id,
                index: snapshot.index,
                taken_at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                data_len: snapshot.data.len() as u64,
            },
            data: snapshot.data,
        };
        let bytes = file.encode();
        tracing::info!(
            node = self.id,
            index = file.header.index,
            bytes = bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "backup taken"
        );
        Ok(bytes)
    }
}

fn chunk_of(backup: u64, file: &Bytes, offset: u64) -> BackupChunk {
    let start = offset as usize;
    let end = (start + BACKUP_CHUNK_BYTES).min(file.len());
    BackupChunk {
        backup,
        total: file.len() as u64,
        offset,
        bytes: file.slice(start..end),
    }
}

/// How a service's client sends one backup request to one node (the
/// membership client's node list and leader, one more request kind).
pub trait BackupSender: crate::members::MemberSender {
    /// Sends `command` to node `id`: the node's answer, or why there was
    /// none.
    fn send_backup(
        &self,
        id: NodeId,
        command: BackupCommand,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<BackupReply, String>> + Send;
}

/// Takes a backup from the cluster: asks nodes in turn (following a
/// refusal's leader hint) until one confirms a read point, then fetches
/// the whole file from it in chunks, checks it and returns it.
pub async fn fetch<S: BackupSender>(sender: &S, timeout: Duration) -> Result<BackupFile, String> {
    let deadline = Instant::now() + timeout;
    let mut problems: Vec<String> = Vec::new();
    let nodes = || {
        let mut ids = sender.node_ids();
        if let Some(leader) = sender.last_leader().filter(|l| ids.contains(l)) {
            ids.retain(|id| *id != leader);
            ids.insert(0, leader);
        }
        ids
    };
    let mut order = nodes();
    let mut round = 0;
    while Instant::now() < deadline {
        let Some(id) = order.first().copied() else {
            round += 1;
            if round > 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            order = nodes();
            continue;
        };
        order.remove(0);
        let left = deadline.saturating_duration_since(Instant::now());
        let first = match sender.send_backup(id, BackupCommand::Start, left).await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(BackupError::NotReady { leader, reason, .. })) => {
                problems.push(format!("node {id}: {reason}"));
                if let Some(leader) = leader.filter(|l| *l != id) {
                    order.retain(|n| *n != leader);
                    order.insert(0, leader);
                }
                continue;
            }
            Ok(Err(error)) => return Err(error.to_string()),
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let mut bytes = Vec::with_capacity(first.total as usize);
        let (backup, total) = (first.backup, first.total);
        bytes.extend_from_slice(&first.bytes);
        while (bytes.len() as u64) < total {
            let left = deadline.saturating_duration_since(Instant::now());
            let offset = bytes.len() as u64;
            let chunk = sender
                .send_backup(id, BackupCommand::Chunk { backup, offset }, left)
                .await?
                .map_err(|e| e.to_string())?;
            if chunk.bytes.is_empty() || chunk.offset != offset || chunk.total != total {
                return Err(format!(
                    "node {id}: a chunk at {} of {} bytes ({} total) does not continue at {offset} of {total}",
                    chunk.offset,
                    chunk.bytes.len(),
                    chunk.total
                ));
            }
            bytes.extend_from_slice(&chunk.bytes);
        }
        return BackupFile::decode(&bytes).map_err(|e| format!("node {id} sent a bad file: {e}"));
    }
    Err(if problems.is_empty() {
        format!("no node answered within {timeout:?}")
    } else {
        problems.join("; ")
    })
}

/// What [`restore_node`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The node.
    pub id: NodeId,
    /// Its data directory.
    pub data_dir: std::path::PathBuf,
    /// The index the new cluster's state starts at.
    pub index: LogIndex,
    /// The membership the new cluster starts with.
    pub membership: Membership,
}

/// Seeds the data directory of node `id` of the cluster file `config` with
/// the backup `file` (see the module docs): checks the file is one of
/// `service`, that `check` restores its data into a fresh state machine,
/// that the directory holds no data, then stores the protocol's seed
/// snapshot and syncs it.
pub fn restore_node(
    config: &ClusterConfig,
    id: NodeId,
    service: &str,
    file: &BackupFile,
    check: impl FnOnce(LogIndex, &Bytes) -> Result<(), RecoverError>,
) -> Result<Restored, String> {
    if file.header.service != service {
        return Err(BackupFileError::WrongService {
            expected: service.to_string(),
            found: file.header.service.clone(),
        }
        .to_string());
    }
    check(file.header.index, &file.data)
        .map_err(|e| BackupFileError::Data(e.to_string()).to_string())?;
    let entry = config.node(id).map_err(|e| e.to_string())?;
    if entry.join {
        return Err(format!(
            "node {id} is a joining node (join = true): restore the cluster's voters, then add it with `member add`"
        ));
    }
    let voters = Membership::new(config.nodes.iter().filter(|n| !n.join).map(|n| n.id));
    voters.validate().map_err(|e| e.to_string())?;
    let dir = &entry.data_dir;
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty: restore seeds a new cluster and never overwrites a node's data; \
                 move it away or choose another data_dir",
                dir.display()
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let options = DiskOptions {
        node_id: Some(id),
        cluster_id: Some(config.cluster_id.clone()),
        ..DiskOptions::default()
    };
    let mut store = DiskStore::open(dir, options).map_err(|e| e.to_string())?;
    let snapshot =
        config
            .protocol
            .seed_snapshot(file.header.index, voters.clone(), file.data.clone());
    store.save_snapshot(&snapshot).map_err(|e| e.to_string())?;
    store.sync().map_err(|e| e.to_string())?;
    Ok(Restored {
        id,
        data_dir: dir.clone(),
        index: file.header.index,
        membership: voters,
    })
}

/// The `snapshot` subcommands, the same in every service's binary.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum SnapshotAction {
    /// Save a consistent snapshot of the running cluster's data to FILE
    /// (taken after a read barrier; needs the `[operator] token_file`).
    Save {
        /// Where to write it.
        file: std::path::PathBuf,
    },
    /// Seed the empty data directory of node ID of a new cluster (any
    /// protocol) from FILE. Run it for every node, then start them.
    Restore {
        /// The backup.
        file: std::path::PathBuf,
        /// The node whose data directory to seed.
        #[arg(long)]
        id: NodeId,
    },
    /// Check FILE and print what it holds.
    Inspect {
        /// The backup.
        file: std::path::PathBuf,
    },
}

/// Runs a `snapshot` subcommand for the service named `service` and
/// returns what to print. `client` builds the cluster client (only `save`
/// needs one: `restore` and `inspect` work offline); `check` restores data
/// into a fresh state machine of the service.
pub async fn run_action<S: BackupSender>(
    action: &SnapshotAction,
    config: &ClusterConfig,
    service: &str,
    client: impl FnOnce() -> Result<S, String>,
    check: impl FnOnce(LogIndex, &Bytes) -> Result<(), RecoverError>,
) -> Result<String, String> {
    match action {
        SnapshotAction::Save { file } => {
            let client = client()?;
            let backup = fetch(&client, Duration::from_secs(120)).await?;
            if backup.header.service != service {
                return Err(format!(
                    "the cluster answered with a backup of `{}`, not of `{service}`: is {} the right cluster file?",
                    backup.header.service,
                    config.path.display()
                ));
            }
            backup
                .write(file)
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            Ok(format!(
                "saved {}: {}",
                file.display(),
                describe(&backup.header)
            ))
        }
        SnapshotAction::Restore { file, id } => {
            let backup = BackupFile::read(file)?;
            let restored = restore_node(config, *id, service, &backup, check)?;
            Ok(format!(
                "node {} ({}): seeded {} at index {} with members {}; restore every node of {} \
                 from the same file, then start them",
                restored.id,
                config.protocol,
                restored.data_dir.display(),
                restored.index,
                restored.membership,
                config.path.display()
            ))
        }
        SnapshotAction::Inspect { file } => {
            let backup = BackupFile::read(file)?;
            Ok(format!(
                "{}: {} (checksum ok)",
                file.display(),
                describe(&backup.header)
            ))
        }
    }
}

/// A one-line description of a backup's header.
pub fn describe(header: &BackupHeader) -> String {
    format!(
        "{} backup of cluster `{}` ({}), index {}, taken by node {} at {} ms since the epoch, {} bytes of data",
        header.service,
        header.cluster_id,
        header.protocol,
        header.index,
        header.node,
        header.taken_at_unix_ms,
        header.data_len
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> BackupFile {
        BackupFile {
            header: BackupHeader {
                service: "kv".into(),
                cluster_id: "c".into(),
                protocol: "raft".into(),
                node: 2,
                index: 1234,
                taken_at_unix_ms: 1,
                data_len: 5,
            },
            data: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn a_file_round_trips() {
        let bytes = file().encode();
        assert_eq!(BackupFile::decode(&bytes), Ok(file()));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = file().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x40;
            let error = BackupFile::decode(&bad).expect_err("a flipped byte is refused");
            assert!(
                matches!(
                    error,
                    BackupFileError::NotABackup
                        | BackupFileError::Version(_)
                        | BackupFileError::Checksum { .. }
                        | BackupFileError::Truncated { .. }
                        | BackupFileError::Trailing { .. }
                        | BackupFileError::Header(_)
                ),
                "byte {i}: {error}"
            );
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = file().encode();
        for len in 0..bytes.len() {
            assert!(BackupFile::decode(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(
            BackupFile::decode(&longer),
            Err(BackupFileError::Trailing { extra: 1 })
        );
    }

    #[test]
    fn a_changed_data_byte_is_a_checksum_error() {
        let bytes = file().encode();
        let mut bad = bytes.to_vec();
        let at = bad.len() - 6;
        bad[at] ^= 1;
        assert!(matches!(
            BackupFile::decode(&bad),
            Err(BackupFileError::Checksum { .. })
        ));
    }

    #[test]
    fn the_snapshot_query_is_not_a_small_enum_tag() {
        // Services' queries are postcard enums: their first byte is a
        // variant index below 0x80.
        assert!(SNAPSHOT_QUERY[0] >= 0x80);
    }
}
