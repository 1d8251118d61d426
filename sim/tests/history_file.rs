//! A simulated run writes its client history in the shared JSONL format
//! (`shared/HISTORY.md`); the project's reader and checker take it back.

use consensus_sim::history::{read_history, EventType};
use consensus_sim::linearizability::check;
use consensus_sim::testing::TinyRaft;
use consensus_sim::{run, FaultMode, SimConfig};

#[test]
fn run_writes_a_history_the_checker_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let config = SimConfig {
        nodes: 3,
        seed: 4,
        ops: 300,
        clients: 6,
        faults: FaultMode::All,
        history: Some(path.clone()),
        ..SimConfig::default()
    };
    let report = run::<TinyRaft>(&config).unwrap_or_else(|failure| panic!("{failure}"));
    let events = read_history(&path).expect("the history file parses and validates");
    assert_eq!(events.len(), report.history_events);
    let invokes = events
        .iter()
        .filter(|e| e.kind == EventType::Invoke)
        .count();
    assert_eq!(invokes, 301, "300 ops plus the post-heal liveness write");
    assert!(
        events.iter().all(|e| e.time_ns.is_some()),
        "virtual time on every event"
    );
    assert!(
        events.windows(2).all(|w| w[0].time_ns <= w[1].time_ns),
        "time never goes back"
    );
    assert!(events.iter().any(|e| e.kind == EventType::Ok));
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"process":"#) && first.contains(r#""type":"invoke""#),
        "{first}"
    );
    assert!(check(&events).is_linearizable(), "{}", check(&events));
}
