//! Client histories in the JSON Lines format of `shared/HISTORY.md`.
//!
//! A *history* is what the clients of a replicated register store saw: one
//! [`Event`] a line, in the order the events happened.
//!
//! ```text
//! {"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 17, "time_ns": 1234}
//! {"process": 3, "type": "ok",     "f": "write", "key": "k1", "value": 17, "time_ns": 1300}
//! {"process": 5, "type": "invoke", "f": "cas",   "key": "k1", "value": [17, 18]}
//! {"process": 5, "type": "fail",   "f": "cas",   "key": "k1", "value": [17, 18]}
//! ```
//!
//! * `process`: client process id. A process has at most one operation
//!   outstanding, and a process whose operation ended `info` never invokes
//!   again (Jepsen's convention: a new process id is used instead).
//! * `type`: `invoke`, then exactly one of `ok` (took effect), `fail`
//!   (definitely did not take effect) or `info` (unknown: timeout, lost
//!   connection). An invocation without any completion at the end of a
//!   history (a crashed run) is treated as `info` by the checker.
//! * `f` and `value`: `read` (`value` is what was read on `ok`, `null` for a
//!   missing key, and `null` on the invocation), `write` (`value` is the
//!   written integer), `cas` (`value` is `[expected, new]`).
//! * `key`: keys are independent registers.
//! * `time_ns`: optional monotonic nanoseconds (virtual time in the
//!   simulator). Without it, line order is real-time order.
//!
//! Unknown fields are ignored when reading (so outside tools may add their
//! own); field names and value shapes are otherwise exactly those above.
//!
//! # What this module provides
//!
//! * [`Event`], [`EventType`], [`Op`] with serde (de)serialization matching the
//!   text format (the [`Op`] carries the `f` and the typed `value`).
//! * [`HistoryWriter`]: appends one line per event and flushes it at once, so
//!   a run that crashes leaves a readable prefix (at worst with a torn last
//!   line).
//! * [`read_history`] / [`parse_history`]: strict readers whose errors name the
//!   1-based line number; [`read_history_tolerant`] /
//!   [`parse_history_tolerant`]: the same but a torn (unterminated and
//!   unparseable) last line, as left by a crash mid-write, is dropped and
//!   reported instead of failing.
//! * [`Validator`] / [`validate`]: the well-formedness rules above (one
//!   outstanding operation per process, no invocation after `info`, a
//!   completion matches its invocation's `f`, `key` and written value, time
//!   never goes backwards within a process). Both readers validate.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// Identifier of a client process.
pub type ProcessId = u64;

/// The `type` field: an invocation or one of its three possible completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client sent the operation.
    Invoke,
    /// The operation took effect (for a read: `value` is what was read).
    Ok,
    /// The operation definitely did not take effect (for a cas: the
    /// comparison failed).
    Fail,
    /// Unknown outcome (timeout, connection lost): it may have taken effect at
    /// any point after its invocation, or never.
    Info,
}

impl EventType {
    /// The name used in the text format.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }

    /// Whether this event completes an invocation.
    pub fn is_completion(self) -> bool {
        !matches!(self, EventType::Invoke)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `f` field: which register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Read the register.
    Read,
    /// Overwrite the register.
    Write,
    /// Compare-and-set.
    Cas,
}

impl Function {
    /// The name used in the text format.
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Read => "read",
            Function::Write => "write",
            Function::Cas => "cas",
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A register operation with its typed `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `f: read`. On an `ok` completion, the value read (`None` for a missing
    /// key, written `null`); on an invocation, `fail` or `info`, normally
    /// `None`.
    Read(Option<i64>),
    /// `f: write` of the value.
    Write(i64),
    /// `f: cas` with `(expected, new)`, written `[expected, new]`.
    Cas(i64, i64),
}

impl Op {
    /// The `f` of this operation.
    pub fn function(&self) -> Function {
        match self {
            Op::Read(_) => Function::Read,
            Op::Write(_) => Function::Write,
            Op::Cas(_, _) => Function::Cas,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read(None) => f.write_str("read null"),
            Op::Read(Some(v)) => write!(f, "read {v}"),
            Op::Write(v) => write!(f, "write {v}"),
            Op::Cas(e, n) => write!(f, "cas [{e}, {n}]"),
        }
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawEvent")]
pub struct Event {
    /// The client process (`process`).
    pub process: ProcessId,
    /// Invocation or completion (`type`).
    pub kind: EventType,
    /// The operation and its value (`f` and `value`).
    pub op: Op,
    /// The register (`key`).
    pub key: String,
    /// Monotonic nanoseconds (`time_ns`), if recorded.
    pub time_ns: Option<u64>,
}

impl Event {
    /// An event without a timestamp.
    pub fn new(process: ProcessId, kind: EventType, key: impl Into<String>, op: Op) -> Event {
        Event {
            process,
            kind,
            op,
            key: key.into(),
            time_ns: None,
        }
    }

    /// An `invoke` event.
    pub fn invoke(process: ProcessId, key: impl Into<String>, op: Op) -> Event {
        Event::new(process, EventType::Invoke, key, op)
    }

    /// An `ok` event.
    pub fn ok(process: ProcessId, key: impl Into<String>, op: Op) -> Event {
        Event::new(process, EventType::Ok, key, op)
    }

    /// A `fail` event.
    pub fn fail(process: ProcessId, key: impl Into<String>, op: Op) -> Event {
        Event::new(process, EventType::Fail, key, op)
    }

    /// An `info` event.
    pub fn info(process: ProcessId, key: impl Into<String>, op: Op) -> Event {
        Event::new(process, EventType::Info, key, op)
    }

    /// The same event stamped with `time_ns`.
    pub fn at(mut self, time_ns: u64) -> Event {
        self.time_ns = Some(time_ns);
        self
    }

    /// The event as one JSON line, without the trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing this type cannot fail: every field is a plain value.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process {} {} {} key {:?}",
            self.process, self.kind, self.op, self.key
        )?;
        if let Some(t) = self.time_ns {
            write!(f, " at {t}ns")?;
        }
        Ok(())
    }
}

/// The `value` field as it appears in the text.
enum ValueRef {
    Null,
    Int(i64),
    Pair(i64, i64),
}

impl Serialize for ValueRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ValueRef::Null => serializer.serialize_none(),
            ValueRef::Int(v) => serializer.serialize_i64(*v),
            ValueRef::Pair(e, n) => [*e, *n].serialize(serializer),
        }
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = if self.time_ns.is_some() { 6 } else { 5 };
        let mut s = serializer.serialize_struct("Event", fields)?;
        s.serialize_field("process", &self.process)?;
        s.serialize_field("type", &self.kind)?;
        s.serialize_field("f", &self.op.function())?;
        s.serialize_field("key", &self.key)?;
        let value = match self.op {
            Op::Read(None) => ValueRef::Null,
            Op::Read(Some(v)) | Op::Write(v) => ValueRef::Int(v),
            Op::Cas(e, n) => ValueRef::Pair(e, n),
        };
        s.serialize_field("value", &value)?;
        if let Some(t) = self.time_ns {
            s.serialize_field("time_ns", &t)?;
        }
        s.end()
    }
}

/// The text form, before the `value` is checked against `f`.
#[derive(Deserialize)]
struct RawEvent {
    process: ProcessId,
    #[serde(rename = "type")]
    kind: EventType,
    f: Function,
    key: String,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    time_ns: Option<u64>,
}

impl TryFrom<RawEvent> for Event {
    type Error = String;

    fn try_from(raw: RawEvent) -> Result<Event, String> {
        let int = |v: &serde_json::Value| v.as_i64();
        let op = match raw.f {
            Function::Read => match &raw.value {
                serde_json::Value::Null => Op::Read(None),
                v => match int(v) {
                    Some(i) => Op::Read(Some(i)),
                    None => return Err(format!("read value must be an integer or null, got {v}")),
                },
            },
            Function::Write => match int(&raw.value) {
                Some(i) => Op::Write(i),
                None => return Err(format!("write value must be an integer, got {}", raw.value)),
            },
            Function::Cas => match raw.value.as_array().map(Vec::as_slice) {
                Some([e, n]) => match (int(e), int(n)) {
                    (Some(e), Some(n)) => Op::Cas(e, n),
                    _ => {
                        return Err(format!(
                            "cas value must be [expected, new] integers, got {}",
                            raw.value
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "cas value must be [expected, new], got {}",
                        raw.value
                    ))
                }
            },
        };
        Ok(Event {
            process: raw.process,
            kind: raw.kind,
            op,
            key: raw.key,
            time_ns: raw.time_ns,
        })
    }
}

/// Why a sequence of events is not a well-formed history.
///
/// `index` is the 0-based position of the offending event in the sequence
/// (the readers turn it into a line number, see [`HistoryError::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A completion (`ok`/`fail`/`info`) for a process with nothing outstanding.
    #[error("event {index}: process {process} completes an operation it never invoked")]
    CompletionWithoutInvoke {
        /// Position of the completion.
        index: usize,
        /// The process.
        process: ProcessId,
    },
    /// A second invocation while the process still has one outstanding.
    #[error(
        "event {index}: process {process} invokes while its operation of event {outstanding} is outstanding"
    )]
    ConcurrentInvoke {
        /// Position of the second invocation.
        index: usize,
        /// The process.
        process: ProcessId,
        /// Position of the outstanding invocation.
        outstanding: usize,
    },
    /// An invocation by a process whose earlier operation ended `info`.
    #[error(
        "event {index}: process {process} invokes again after its operation ended info at event {info}"
    )]
    InvokeAfterInfo {
        /// Position of the invocation.
        index: usize,
        /// The process.
        process: ProcessId,
        /// Position of the `info` completion.
        info: usize,
    },
    /// A completion whose `f`, `key` or written value differs from its invocation.
    #[error("event {index}: process {process} {detail} (invoked at event {invocation})")]
    Mismatch {
        /// Position of the completion.
        index: usize,
        /// The process.
        process: ProcessId,
        /// Position of the invocation.
        invocation: usize,
        /// What differs.
        detail: Box<Mismatch>,
    },
    /// An event of a process stamped earlier than the previous event of the
    /// same process.
    #[error("event {index}: process {process} at time_ns {time_ns} is earlier than its previous event at {previous_ns}")]
    TimeWentBackwards {
        /// Position of the event.
        index: usize,
        /// The process.
        process: ProcessId,
        /// Its timestamp.
        time_ns: u64,
        /// The process's previous timestamp.
        previous_ns: u64,
    },
}

/// The two sides of a [`ValidationError::Mismatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The invoked operation.
    pub invoked: Op,
    /// The invoked key.
    pub invoked_key: String,
    /// The completed operation.
    pub completed: Op,
    /// The completed key.
    pub completed_key: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "completes {} on key {:?} but invoked {} on key {:?}",
            self.completed, self.completed_key, self.invoked, self.invoked_key
        )
    }
}

impl ValidationError {
    /// The 0-based position of the offending event.
    pub fn index(&self) -> usize {
        match self {
            ValidationError::CompletionWithoutInvoke { index, .. }
            | ValidationError::ConcurrentInvoke { index, .. }
            | ValidationError::InvokeAfterInfo { index, .. }
            | ValidationError::Mismatch { index, .. }
            | ValidationError::TimeWentBackwards { index, .. } => *index,
        }
    }
}

#[derive(Debug, Clone)]
enum ProcessState {
    Idle,
    Outstanding { index: usize, op: Op, key: String },
    Retired(usize),
}

/// Incremental well-formedness check: feed events in order with
/// [`Validator::push`]. The simulator can use it to catch a client bug at the
/// step that causes it; [`validate`] runs it over a whole slice. Memory is
/// proportional to the number of processes.
#[derive(Debug, Default)]
pub struct Validator {
    processes: std::collections::HashMap<ProcessId, (ProcessState, Option<u64>)>,
    next_index: usize,
}

impl Validator {
    /// A validator that has seen nothing.
    pub fn new() -> Validator {
        Validator::default()
    }

    /// Checks the next event (position = number of events pushed so far).
    /// After an error the validator's state is unspecified.
    pub fn push(&mut self, event: &Event) -> Result<(), ValidationError> {
        let index = self.next_index;
        self.next_index += 1;
        let process = event.process;
        let entry = self
            .processes
            .entry(process)
            .or_insert((ProcessState::Idle, None));
        if let (Some(t), Some(prev)) = (event.time_ns, entry.1) {
            if t < prev {
                return Err(ValidationError::TimeWentBackwards {
                    index,
                    process,
                    time_ns: t,
                    previous_ns: prev,
                });
            }
        }
        if event.time_ns.is_some() {
            entry.1 = event.time_ns;
        }
        match (event.kind, &entry.0) {
            (EventType::Invoke, ProcessState::Idle) => {
                entry.0 = ProcessState::Outstanding {
                    index,
                    op: event.op,
                    key: event.key.clone(),
                };
                Ok(())
            }
            (
                EventType::Invoke,
                ProcessState::Outstanding {
                    index: outstanding, ..
                },
            ) => Err(ValidationError::ConcurrentInvoke {
                index,
                process,
                outstanding: *outstanding,
            }),
            (EventType::Invoke, ProcessState::Retired(info)) => {
                Err(ValidationError::InvokeAfterInfo {
                    index,
                    process,
                    info: *info,
                })
            }
            (_, ProcessState::Idle) | (_, ProcessState::Retired(_)) => {
                Err(ValidationError::CompletionWithoutInvoke { index, process })
            }
            (
                kind,
                ProcessState::Outstanding {
                    index: invocation,
                    op,
                    key,
                },
            ) => {
                if !completion_matches(op, &event.op) || *key != event.key {
                    return Err(ValidationError::Mismatch {
                        index,
                        process,
                        invocation: *invocation,
                        detail: Box::new(Mismatch {
                            invoked: *op,
                            invoked_key: key.clone(),
                            completed: event.op,
                            completed_key: event.key.clone(),
                        }),
                    });
                }
                entry.0 = if kind == EventType::Info {
                    ProcessState::Retired(index)
                } else {
                    ProcessState::Idle
                };
                Ok(())
            }
        }
    }
}

/// A completion matches its invocation when `f` is the same and the written
/// value (write) or the `[expected, new]` pair (cas) is the same; a read's
/// completion carries what was read, so only `f` is compared.
fn completion_matches(invoked: &Op, completed: &Op) -> bool {
    match (invoked, completed) {
        (Op::Read(_), Op::Read(_)) => true,
        (Op::Write(a), Op::Write(b)) => a == b,
        (Op::Cas(e1, n1), Op::Cas(e2, n2)) => e1 == e2 && n1 == n2,
        _ => false,
    }
}

/// Checks that `events` form a well-formed history (see the module docs).
/// Invocations left without a completion at the end are allowed.
pub fn validate(events: &[Event]) -> Result<(), ValidationError> {
    let mut validator = Validator::new();
    events.iter().try_for_each(|e| validator.push(e))
}

/// Errors of reading or writing a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be opened, read or written.
    #[error("history {path}: {source}")]
    Io {
        /// The file (empty for a non-file reader or writer).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A line is not a valid event.
    #[error("history line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The last line has no newline and is not a valid event: a writer
    /// crashed mid-line. [`read_history_tolerant`] accepts this case.
    #[error("history line {line}: truncated last line ({bytes} bytes without newline): {message}")]
    TruncatedLastLine {
        /// 1-based line number.
        line: usize,
        /// Length of the torn line.
        bytes: usize,
        /// The parse error.
        message: String,
    },
    /// The events parse but do not form a well-formed history.
    #[error("history line {line}: {source}")]
    Invalid {
        /// 1-based line number of the offending event.
        line: usize,
        /// The rule it breaks (its `index` is the event's 0-based position
        /// among the events, which differs from `line - 1` only when the
        /// file has blank lines).
        source: ValidationError,
    },
}

/// A torn last line dropped by the tolerant readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedLine {
    /// 1-based line number.
    pub line: usize,
    /// Its bytes (not necessarily UTF-8).
    pub bytes: Vec<u8>,
    /// Why it does not parse.
    pub message: String,
}

/// What a tolerant reader returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TolerantHistory {
    /// The events of every complete line.
    pub events: Vec<Event>,
    /// The torn last line, if the file ended in one.
    pub truncated: Option<TruncatedLine>,
}

fn io_error(path: &Path, source: io::Error) -> HistoryError {
    HistoryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads lines into events. Blank (whitespace-only) lines are skipped.
fn parse_lines(
    mut reader: impl BufRead,
    path: &Path,
    tolerant: bool,
) -> Result<TolerantHistory, HistoryError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0usize;
    let mut truncated = None;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        line += 1;
        let terminated = buf.last() == Some(&b'\n');
        let text = if terminated { &buf[..n - 1] } else { &buf[..] };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Event>(text) {
            Ok(event) => {
                events.push(event);
                lines.push(line);
            }
            Err(e) if !terminated => {
                if tolerant {
                    truncated = Some(TruncatedLine {
                        line,
                        bytes: text.to_vec(),
                        message: e.to_string(),
                    });
                    break;
                }
                return Err(HistoryError::TruncatedLastLine {
                    line,
                    bytes: text.len(),
                    message: e.to_string(),
                });
            }
            Err(e) => {
                return Err(HistoryError::Parse {
                    line,
                    message: e.to_string(),
                })
            }
        }
    }
    validate(&events).map_err(|source| HistoryError::Invalid {
        line: lines[source.index()],
        source,
    })?;
    Ok(TolerantHistory { events, truncated })
}

/// Parses and validates a history from a reader. Any malformed line,
/// including a torn last line, is an error naming the line.
pub fn parse_history(reader: impl BufRead) -> Result<Vec<Event>, HistoryError> {
    parse_lines(reader, Path::new(""), false).map(|h| h.events)
}

/// Like [`parse_history`], but an unterminated, unparseable last line (a
/// crash mid-write) is dropped and reported in
/// [`TolerantHistory::truncated`]. A malformed line anywhere else is still an
/// error.
pub fn parse_history_tolerant(reader: impl BufRead) -> Result<TolerantHistory, HistoryError> {
    parse_lines(reader, Path::new(""), true)
}

/// Reads and validates a history file (strict, see [`parse_history`]).
pub fn read_history(path: impl AsRef<Path>) -> Result<Vec<Event>, HistoryError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    parse_lines(BufReader::new(file), path, false).map(|h| h.events)
}

/// Reads and validates a history file, tolerating a torn last line (see
/// [`parse_history_tolerant`]).
pub fn read_history_tolerant(path: impl AsRef<Path>) -> Result<TolerantHistory, HistoryError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    parse_lines(BufReader::new(file), path, true)
}

/// Writes a history as events happen: each [`HistoryWriter::append`] writes
/// one whole line with a single `write_all` and flushes it, so a process that
/// crashes leaves every earlier event readable (and at most a torn last
/// line, which [`read_history_tolerant`] drops).
///
/// Flushing hands the line to the operating system; it survives a crash of
/// the writing process, not of the machine. Call [`HistoryWriter::sync`] for
/// that.
#[derive(Debug)]
pub struct HistoryWriter<W: Write = File> {
    out: W,
    path: PathBuf,
    line: Vec<u8>,
    written: u64,
}

/// Makes a history file end at a line boundary (see
/// [`HistoryWriter::append_to`]).
fn repair_tail(file: &mut File) -> io::Result<Option<TruncatedLine>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut byte)?;
    if byte[0] == b'\n' {
        return Ok(None);
    }
    // The start of the last line: after the last newline, read backwards.
    let mut start = 0u64;
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    while end > 0 {
        let from = end.saturating_sub(chunk.len() as u64);
        let n = (end - from) as usize;
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(p) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            start = from + p as u64 + 1;
            break;
        }
        end = from;
    }
    let mut last = vec![0u8; (len - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut last)?;
    let error = match serde_json::from_slice::<Event>(&last) {
        Ok(_) => {
            file.write_all(b"\n")?;
            return Ok(None);
        }
        Err(e) => e,
    };
    // Its line number, for the report.
    let mut newlines = 0usize;
    let mut at = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    file.seek(SeekFrom::Start(0))?;
    while at < start {
        let n = ((start - at) as usize).min(buf.len());
        file.read_exact(&mut buf[..n])?;
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        at += n as u64;
    }
    file.set_len(start)?;
    Ok(Some(TruncatedLine {
        line: newlines + 1,
        bytes: last,
        message: error.to_string(),
    }))
}

impl HistoryWriter<File> {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        Ok(HistoryWriter {
            out: file,
            path: path.to_path_buf(),
            line: Vec::with_capacity(128),
            written: 0,
        })
    }

    /// Opens the file at `path` for appending, creating it if needed.
    ///
    /// If the file ends in a torn line (a writer crashed mid-line), the torn
    /// bytes are cut off first so that new events start on a line of their
    /// own; a last line that is a complete event but lacks its newline gets
    /// the newline instead. Returns the torn line that was removed, if any.
    pub fn append_to(
        path: impl AsRef<Path>,
    ) -> Result<(Self, Option<TruncatedLine>), HistoryError> {
        let path = path.as_ref();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let torn = repair_tail(&mut file).map_err(|e| io_error(path, e))?;
        Ok((
            HistoryWriter {
                out: file,
                path: path.to_path_buf(),
                line: Vec::with_capacity(128),
                written: 0,
            },
            torn,
        ))
    }

    /// `fdatasync`s the file: everything appended so far survives a machine
    /// crash.
    pub fn sync(&self) -> Result<(), HistoryError> {
        self.out.sync_data().map_err(|e| io_error(&self.path, e))
    }
}

impl<W: Write> HistoryWriter<W> {
    /// A writer over any sink (a `Vec<u8>` in tests).
    pub fn new(out: W) -> Self {
        HistoryWriter {
            out,
            path: PathBuf::new(),
            line: Vec::with_capacity(128),
            written: 0,
        }
    }

    /// Appends `event` as one line and flushes it.
    pub fn append(&mut self, event: &Event) -> Result<(), HistoryError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)
            .map_err(|e| io_error(&self.path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .and_then(|()| self.out.flush())
            .map_err(|e| io_error(&self.path, e))?;
        self.written += 1;
        Ok(())
    }

    /// Number of events appended by this writer.
    pub fn events_written(&self) -> u64 {
        self.written
    }

    /// The underlying sink.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Gives back the underlying sink.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_field_names_in_order() {
        let e = Event::invoke(3, "k1", Op::Cas(17, 18)).at(1400);
        assert_eq!(
            e.to_json(),
            r#"{"process":3,"type":"invoke","f":"cas","key":"k1","value":[17,18],"time_ns":1400}"#
        );
        let e = Event::ok(4, "k1", Op::Read(None));
        assert_eq!(
            e.to_json(),
            r#"{"process":4,"type":"ok","f":"read","key":"k1","value":null}"#
        );
    }

    #[test]
    fn rejects_ill_typed_values() {
        for bad in [
            r#"{"process":1,"type":"ok","f":"write","key":"k","value":null}"#,
            r#"{"process":1,"type":"ok","f":"write","key":"k","value":1.5}"#,
            r#"{"process":1,"type":"ok","f":"cas","key":"k","value":[1]}"#,
            r#"{"process":1,"type":"ok","f":"cas","key":"k","value":3}"#,
            r#"{"process":1,"type":"ok","f":"read","key":"k","value":"x"}"#,
            r#"{"process":1,"type":"done","f":"read","key":"k","value":null}"#,
            r#"{"process":1,"type":"ok","f":"append","key":"k","value":1}"#,
            r#"{"process":-1,"type":"ok","f":"read","key":"k","value":null}"#,
            r#"{"type":"ok","f":"read","key":"k","value":null}"#,
        ] {
            assert!(serde_json::from_str::<Event>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn read_value_may_be_omitted_and_unknown_fields_are_ignored() {
        let e: Event =
            serde_json::from_str(r#"{"process":1,"type":"invoke","f":"read","key":"k","node":2}"#)
                .expect("parses");
        assert_eq!(e, Event::invoke(1, "k", Op::Read(None)));
    }
}
