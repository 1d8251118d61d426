//! The self-contained HTML page of a scenario run: what the scenario is,
//! the SVG swimlanes, every expectation with its verdict per protocol, the
//! totals, and the text timeline. No scripts, no external stylesheets,
//! fonts or images.

use std::fmt::Write;

use super::svg::{escape, swimlanes};
use super::text;
use crate::scenario::{ScenarioOutcome, Verdict};

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em auto;max-width:1000px;padding:0 1em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left;font-size:.9em}\
.ok{color:#2ca02c;font-weight:bold}.fail{color:#d62728;font-weight:bold}.na{color:#888}\
pre{font-size:11px;background:#f6f6f6;padding:8px;overflow-x:auto}code{background:#f0f0f0;padding:0 3px}";

/// The whole page.
pub fn page(outcome: &ScenarioOutcome) -> String {
    let info = outcome.scenario.info();
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n");
    let _ = writeln!(
        html,
        "<title>scenario {}: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(info.name),
        escape(info.title)
    );
    let _ = writeln!(
        html,
        "<h1>{}: {}</h1>\n<p>{}</p>\n<p><em>{}</em></p>",
        escape(info.name),
        escape(info.title),
        escape(info.story),
        escape(info.source)
    );
    let protocols: Vec<&str> = outcome.runs.iter().map(|r| r.protocol.as_str()).collect();
    let _ = writeln!(
        html,
        "<p>seed {}, {} nodes. Reproduce: <code>consensus-sim scenario {} --protocol {} --nodes {} --seed {}</code></p>",
        outcome.config.seed,
        outcome.config.nodes,
        escape(info.name),
        escape(&protocols.join(",")),
        outcome.config.nodes,
        outcome.config.seed
    );
    html.push_str("<ul>\n");
    for run in &outcome.runs {
        let _ = writeln!(
            html,
            "<li><strong>{}</strong>: {}</li>",
            escape(&run.protocol),
            escape(&run.leader_meaning)
        );
    }
    html.push_str("</ul>\n");
    html.push_str(&swimlanes(outcome));
    expectations(&mut html, outcome);
    summary(&mut html, outcome);
    let _ = writeln!(
        html,
        "<h2>Timeline</h2>\n<pre>{}</pre>\n</body>\n</html>",
        escape(&text::report(outcome))
    );
    html
}

fn expectations(html: &mut String, outcome: &ScenarioOutcome) {
    html.push_str("<h2>Expectations</h2>\n");
    for run in &outcome.runs {
        let _ = writeln!(
            html,
            "<h3>{}</h3>\n<table>\n<tr><th>verdict</th><th>what must happen</th><th>what happened</th></tr>",
            escape(&run.protocol)
        );
        for expectation in &run.expectations {
            let class = match expectation.verdict {
                Verdict::Held(_) => "ok",
                Verdict::Broken(_) => "fail",
                Verdict::NotApplicable(_) => "na",
            };
            let _ = writeln!(
                html,
                "<tr><td class=\"{class}\">{}</td><td>{}</td><td>{}</td></tr>",
                expectation.verdict.mark(),
                escape(&expectation.statement),
                escape(expectation.verdict.detail())
            );
        }
        html.push_str("</table>\n");
    }
}

fn summary(html: &mut String, outcome: &ScenarioOutcome) {
    html.push_str("<h2>Summary</h2>\n<table>\n<tr><th>protocol</th><th>longest unavailability</th><th>leaders elected</th><th>ops ok / failed / unknown</th><th>messages</th><th>bytes</th><th>snapshots installed</th></tr>\n");
    for run in &outcome.runs {
        let s = &run.summary;
        let unavailable = s.unavailable.map_or("no fault".to_owned(), |(a, b)| {
            format!("{} ms (from {:.2} s)", (b - a) / 1_000_000, a as f64 / 1e9)
        });
        let leaders = s
            .leader_changes
            .map_or("none (no leader)".to_owned(), |n| n.to_string());
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{unavailable}</td><td>{leaders}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&run.protocol),
            s.ok,
            s.failed,
            s.unknown,
            s.messages,
            s.bytes,
            s.snapshots_installed
        );
    }
    html.push_str("</table>\n");
}
