//! The JSON Lines history format of `shared/HISTORY.md`: parsing, writing,
//! round trips, torn last lines and validation errors.

use std::io::Write;

use consensus_sim::history::{
    parse_history, parse_history_tolerant, read_history, read_history_tolerant, validate, Event,
    EventType, HistoryError, HistoryWriter, Op, ValidationError,
};

/// The example of `shared/HISTORY.md`, verbatim.
const HISTORY_MD_EXAMPLE: &str = r#"{"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 17, "time_ns": 1234}
{"process": 3, "type": "ok",     "f": "write", "key": "k1", "value": 17, "time_ns": 1300}
{"process": 4, "type": "invoke", "f": "read",  "key": "k1", "value": null, "time_ns": 1310}
{"process": 4, "type": "ok",     "f": "read",  "key": "k1", "value": 17, "time_ns": 1390}
{"process": 5, "type": "invoke", "f": "cas",   "key": "k1", "value": [17, 18], "time_ns": 1400}
{"process": 5, "type": "fail",   "f": "cas",   "key": "k1", "value": [17, 18], "time_ns": 1450}
"#;

fn example_events() -> Vec<Event> {
    vec![
        Event::invoke(3, "k1", Op::Write(17)).at(1234),
        Event::ok(3, "k1", Op::Write(17)).at(1300),
        Event::invoke(4, "k1", Op::Read(None)).at(1310),
        Event::ok(4, "k1", Op::Read(Some(17))).at(1390),
        Event::invoke(5, "k1", Op::Cas(17, 18)).at(1400),
        Event::fail(5, "k1", Op::Cas(17, 18)).at(1450),
    ]
}

fn to_text(events: &[Event]) -> String {
    let mut writer = HistoryWriter::new(Vec::new());
    for e in events {
        writer.append(e).expect("write to a Vec");
    }
    assert_eq!(writer.events_written(), events.len() as u64);
    String::from_utf8(writer.into_inner()).expect("utf-8")
}

#[test]
fn history_md_example_parses_to_the_expected_events() {
    let events = parse_history(HISTORY_MD_EXAMPLE.as_bytes()).expect("the documented example");
    assert_eq!(events, example_events());
}

#[test]
fn history_md_example_round_trips() {
    let events = parse_history(HISTORY_MD_EXAMPLE.as_bytes()).expect("parses");
    let text = to_text(&events);
    assert_eq!(
        text.lines().next(),
        Some(r#"{"process":3,"type":"invoke","f":"write","key":"k1","value":17,"time_ns":1234}"#)
    );
    assert_eq!(
        text.lines().nth(5),
        Some(r#"{"process":5,"type":"fail","f":"cas","key":"k1","value":[17,18],"time_ns":1450}"#)
    );
    // Same field names and values as the documented text, line by line.
    for (ours, theirs) in text.lines().zip(HISTORY_MD_EXAMPLE.lines()) {
        let a: serde_json::Value = serde_json::from_str(ours).expect("json");
        let b: serde_json::Value = serde_json::from_str(theirs).expect("json");
        assert_eq!(a, b);
    }
    assert_eq!(parse_history(text.as_bytes()).expect("reparses"), events);
}

#[test]
fn every_op_and_type_round_trips_with_and_without_time() {
    let mut events = Vec::new();
    let ops = [
        (Op::Read(None), Op::Read(Some(-3))),
        (Op::Read(None), Op::Read(None)),
        (Op::Write(i64::MAX), Op::Write(i64::MAX)),
        (Op::Write(i64::MIN), Op::Write(i64::MIN)),
        (Op::Cas(0, -1), Op::Cas(0, -1)),
    ];
    let mut process = 0;
    for kind in [EventType::Ok, EventType::Fail, EventType::Info] {
        for (invoked, completed) in ops {
            process += 1;
            let time = (process % 2 == 0).then_some(process * 10);
            let mut inv = Event::invoke(process, format!("key \"{process}\" ü"), invoked);
            let mut done = Event::new(process, kind, inv.key.clone(), completed);
            inv.time_ns = time;
            done.time_ns = time.map(|t| t + 1);
            events.push(inv);
            events.push(done);
        }
    }
    let text = to_text(&events);
    assert!(!text.contains("\"time_ns\":null"), "absent time is omitted");
    assert_eq!(parse_history(text.as_bytes()).expect("parses"), events);
}

#[test]
fn writer_leaves_a_readable_file_after_each_event_even_without_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.jsonl");
    let events = example_events();
    let mut writer = HistoryWriter::create(&path).expect("create");
    for (n, e) in events.iter().enumerate() {
        writer.append(e).expect("append");
        // What a crash right now would leave behind.
        let read = read_history(&path).expect("readable prefix");
        assert_eq!(read, events[..=n]);
    }
    writer.sync().expect("fdatasync");
    // A crashed process runs no destructor.
    std::mem::forget(writer);
    assert_eq!(read_history(&path).expect("readable"), events);
}

#[test]
fn append_to_continues_an_existing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.jsonl");
    let events = example_events();
    let mut first = HistoryWriter::create(&path).expect("create");
    for e in &events[..3] {
        first.append(e).expect("append");
    }
    drop(first);
    let (mut second, torn) = HistoryWriter::append_to(&path).expect("open");
    assert_eq!(torn, None);
    for e in &events[3..] {
        second.append(e).expect("append");
    }
    drop(second);
    assert_eq!(read_history(&path).expect("read"), events);
}

#[test]
fn append_to_after_a_crash_cuts_the_torn_line_or_completes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = example_events();
    let full = to_text(&events);
    let last_start = full[..full.len() - 1].rfind('\n').expect("several lines") + 1;
    for cut in last_start..full.len() {
        let path = dir.path().join(format!("cut{cut}.jsonl"));
        std::fs::write(&path, &full.as_bytes()[..cut]).expect("write");
        let (mut writer, torn) = HistoryWriter::append_to(&path).expect("open");
        // The restarted run continues with a fresh process.
        let next = Event::invoke(9, "k1", Op::Read(None));
        writer.append(&next).expect("append");
        drop(writer);
        let read = read_history(&path).expect("a clean file again");
        let kept = if cut == last_start || cut == full.len() - 1 {
            // Nothing torn, or a complete event that only lacked its newline.
            assert_eq!(torn, None, "cut {cut}");
            if cut == last_start {
                5
            } else {
                6
            }
        } else {
            let torn = torn.expect("torn line reported");
            assert_eq!(torn.line, 6, "cut {cut}");
            assert_eq!(torn.bytes, full.as_bytes()[last_start..cut]);
            5
        };
        let mut expected = events[..kept].to_vec();
        expected.push(next);
        assert_eq!(read, expected, "cut {cut}");
    }
}

#[test]
fn torn_last_line_at_every_byte_is_reported_or_tolerated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = example_events();
    let full = to_text(&events);
    let last_start = full[..full.len() - 1].rfind('\n').expect("several lines") + 1;
    let last_line_number = events.len();
    for cut in last_start..full.len() {
        let path = dir.path().join(format!("cut{cut}.jsonl"));
        std::fs::write(&path, &full.as_bytes()[..cut]).expect("write");
        let torn_bytes = cut - last_start;
        if torn_bytes == 0 {
            // Cut exactly at a line boundary: a clean prefix.
            assert_eq!(read_history(&path).expect("clean"), events[..5]);
            continue;
        }
        if cut == full.len() - 1 {
            // The whole object without its newline is a complete event.
            assert_eq!(read_history(&path).expect("complete"), events);
            let tolerant = read_history_tolerant(&path).expect("complete");
            assert_eq!(tolerant.truncated, None);
            continue;
        }
        match read_history(&path) {
            Err(HistoryError::TruncatedLastLine { line, bytes, .. }) => {
                assert_eq!(line, last_line_number, "cut {cut}");
                assert_eq!(bytes, torn_bytes, "cut {cut}");
            }
            other => panic!("cut {cut}: expected a truncated-line error, got {other:?}"),
        }
        let tolerant = read_history_tolerant(&path).expect("tolerated");
        assert_eq!(tolerant.events, events[..5], "cut {cut}");
        let torn = tolerant.truncated.expect("reported");
        assert_eq!(torn.line, last_line_number);
        assert_eq!(torn.bytes, full.as_bytes()[last_start..cut]);
    }
}

#[test]
fn a_bad_line_that_is_not_last_is_an_error_naming_it_even_when_tolerant() {
    let mut text = to_text(&example_events());
    let lines: Vec<&str> = text.lines().collect();
    let broken = format!(
        "{}\n{}\n{{\"process\": 4, \"type\": \"ok\"\n{}\n",
        lines[0],
        lines[1],
        lines[3..].join("\n")
    );
    for result in [
        parse_history(broken.as_bytes()).map(|_| ()),
        parse_history_tolerant(broken.as_bytes()).map(|_| ()),
    ] {
        match result {
            Err(HistoryError::Parse { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a parse error on line 3, got {other:?}"),
        }
    }
    // A bad value type names its line too.
    text.push_str(r#"{"process": 9, "type": "invoke", "f": "write", "key": "k1", "value": "x"}"#);
    text.push('\n');
    match parse_history(text.as_bytes()) {
        Err(HistoryError::Parse { line, message }) => {
            assert_eq!(line, 7);
            assert!(
                message.contains("write value must be an integer"),
                "{message}"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn blank_lines_are_skipped_and_line_numbers_stay_true() {
    let text = "\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null}\n   \n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"value\":null}\n";
    match parse_history(text.as_bytes()) {
        Err(HistoryError::Invalid {
            line,
            source: ValidationError::ConcurrentInvoke { index, .. },
        }) => {
            assert_eq!(line, 4);
            assert_eq!(index, 1);
        }
        other => panic!("expected a validation error on line 4, got {other:?}"),
    }
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.jsonl");
    match read_history(&path) {
        Err(e @ HistoryError::Io { .. }) => assert!(e.to_string().contains("absent.jsonl")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

fn invalid_at(events: &[Event]) -> ValidationError {
    validate(events).expect_err("must be rejected")
}

#[test]
fn validation_rejects_ill_formed_histories() {
    let w = |v| Op::Write(v);
    // Two outstanding operations.
    let e = invalid_at(&[
        Event::invoke(1, "k", w(1)),
        Event::invoke(1, "k", Op::Read(None)),
    ]);
    assert_eq!(
        e,
        ValidationError::ConcurrentInvoke {
            index: 1,
            process: 1,
            outstanding: 0
        }
    );
    // Invoking again after info.
    let e = invalid_at(&[
        Event::invoke(1, "k", w(1)),
        Event::info(1, "k", w(1)),
        Event::invoke(1, "k", w(2)),
    ]);
    assert_eq!(
        e,
        ValidationError::InvokeAfterInfo {
            index: 2,
            process: 1,
            info: 1
        }
    );
    // A completion without an invocation, and a second completion.
    assert_eq!(
        invalid_at(&[Event::ok(2, "k", w(1))]),
        ValidationError::CompletionWithoutInvoke {
            index: 0,
            process: 2
        }
    );
    assert_eq!(
        invalid_at(&[
            Event::invoke(2, "k", w(1)),
            Event::ok(2, "k", w(1)),
            Event::ok(2, "k", w(1)),
        ])
        .index(),
        2
    );
    // Completion of a different f, key or written value.
    for (invoked, completed, key) in [
        (w(1), Op::Read(Some(1)), "k"),
        (w(1), w(2), "k"),
        (Op::Cas(1, 2), Op::Cas(1, 3), "k"),
        (w(1), w(1), "other"),
    ] {
        match invalid_at(&[Event::invoke(3, "k", invoked), Event::ok(3, key, completed)]) {
            ValidationError::Mismatch {
                index, invocation, ..
            } => {
                assert_eq!((index, invocation), (1, 0));
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }
    // Time going backwards within a process.
    assert_eq!(
        invalid_at(&[
            Event::invoke(4, "k", w(1)).at(100),
            Event::ok(4, "k", w(1)).at(99),
        ]),
        ValidationError::TimeWentBackwards {
            index: 1,
            process: 4,
            time_ns: 99,
            previous_ns: 100
        }
    );
}

#[test]
fn validation_accepts_what_the_format_allows() {
    validate(&[
        // Different processes interleave; timestamps may tie across processes.
        Event::invoke(1, "k", Op::Write(1)).at(5),
        Event::invoke(2, "k", Op::Read(None)).at(5),
        Event::ok(2, "k", Op::Read(Some(1))).at(9),
        Event::info(1, "k", Op::Write(1)).at(9),
        // A fresh process after the info; an invocation left outstanding at the end.
        Event::invoke(3, "k", Op::Cas(1, 2)).at(10),
    ])
    .expect("well-formed");
}

#[test]
fn a_history_file_written_in_one_go_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raw.jsonl");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(HISTORY_MD_EXAMPLE.as_bytes()).expect("write");
    drop(f);
    assert_eq!(read_history(&path).expect("read"), example_events());
    let tolerant = read_history_tolerant(&path).expect("read");
    assert_eq!(tolerant.events, example_events());
    assert!(tolerant.truncated.is_none());
}
