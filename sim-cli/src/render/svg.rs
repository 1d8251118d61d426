//! SVG swimlanes of a scenario run: one block per protocol on one time
//! axis, one lane per node coloured by role (paused and crashed included),
//! the commit index drawn as a line inside each lane, faults shaded (the
//! nodes they hit more strongly), and under each block three thin rows for
//! the client operations that ended ok, failed or unknown.
//!
//! Self-contained: no scripts, no stylesheets, no fonts, no links.

use std::fmt::Write;

use consensus_api::Role;

use crate::scenario::{
    format_epoch, NodeKind, NodeState, Outcome, ProtocolRun, ScenarioOutcome, SECOND_NS,
};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 44.0;
const LANE: f64 = 14.0;
const LANE_GAP: f64 = 3.0;
const OPS_ROW: f64 = 3.0;
const TITLE: f64 = 34.0;
const BLOCK_GAP: f64 = 14.0;
const AXIS: f64 = 26.0;

/// Fill colour of a node state.
pub fn colour(state: &NodeState) -> &'static str {
    match state.kind {
        NodeKind::Crashed => "#d9d9d9",
        NodeKind::Paused(_) => "#9467bd",
        NodeKind::Up(Role::Leader) => "#1f5fa8",
        NodeKind::Up(Role::Follower) => "#a6c8e8",
        NodeKind::Up(Role::Candidate) => "#f39c34",
        NodeKind::Up(Role::Peer) => "#7fc97f",
        NodeKind::Up(Role::Learner) => "#c5b0d5",
    }
}

const LEGEND: [(&str, &str); 7] = [
    ("#1f5fa8", "leader"),
    ("#a6c8e8", "follower"),
    ("#f39c34", "candidate"),
    ("#7fc97f", "peer (Paxos)"),
    ("#c5b0d5", "learner"),
    ("#9467bd", "paused"),
    ("#d9d9d9", "crashed"),
];

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Maps virtual time to x.
struct Scale {
    end_ns: u64,
}

impl Scale {
    fn x(&self, time_ns: u64) -> f64 {
        let width = WIDTH - LEFT - RIGHT;
        LEFT + width * (time_ns.min(self.end_ns) as f64) / (self.end_ns.max(1) as f64)
    }
}

fn block_height(nodes: usize) -> f64 {
    TITLE + nodes as f64 * (LANE + LANE_GAP) + 3.0 * OPS_ROW + 4.0
}

/// The standalone SVG document.
pub fn swimlanes(outcome: &ScenarioOutcome) -> String {
    let end_ns = outcome.runs.iter().map(|r| r.end_ns).max().unwrap_or(1);
    let scale = Scale { end_ns };
    let blocks: f64 = outcome
        .runs
        .iter()
        .map(|r| block_height(r.nodes()) + BLOCK_GAP)
        .sum();
    let height = TOP + blocks + AXIS;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="10">"#
    );
    let info = outcome.scenario.info();
    let _ = write!(
        svg,
        "<title>{}: {} (seed {})</title>",
        escape(info.name),
        escape(info.title),
        outcome.config.seed
    );
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height:.0}" fill="#ffffff"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{}: {}</text>"#,
        escape(info.name),
        escape(info.title)
    );
    legend(&mut svg);
    let mut y = TOP;
    for run in &outcome.runs {
        block(&mut svg, run, &scale, y);
        y += block_height(run.nodes()) + BLOCK_GAP;
    }
    axis(&mut svg, &scale, y);
    svg.push_str("</svg>\n");
    svg
}

fn legend(svg: &mut String) {
    let mut x = LEFT;
    let y = 24.0;
    for (fill, label) in LEGEND {
        let _ = write!(
            svg,
            r#"<rect x="{x:.0}" y="{y}" width="10" height="10" fill="{fill}"/><text x="{:.0}" y="{:.0}">{label}</text>"#,
            x + 13.0,
            y + 9.0
        );
        x += 20.0 + 5.5 * label.len() as f64;
    }
    let _ = write!(
        svg,
        r##"<rect x="{x:.0}" y="{y}" width="10" height="10" fill="#d62728" fill-opacity="0.25"/><text x="{:.0}" y="{:.0}">fault</text>"##,
        x + 13.0,
        y + 9.0
    );
    x += 48.0;
    let _ = write!(
        svg,
        r##"<line x1="{x:.0}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="#222222"/><text x="{:.0}" y="{:.0}">commit index</text>"##,
        y + 9.0,
        x + 10.0,
        y + 1.0,
        x + 13.0,
        y + 9.0
    );
    x += 84.0;
    for (fill, label) in [
        ("#2ca02c", "ops ok"),
        ("#d62728", "failed"),
        ("#ff9f1c", "unknown"),
    ] {
        let _ = write!(
            svg,
            r#"<rect x="{x:.0}" y="{:.0}" width="10" height="3" fill="{fill}"/><text x="{:.0}" y="{:.0}">{label}</text>"#,
            y + 4.0,
            x + 13.0,
            y + 9.0
        );
        x += 20.0 + 5.5 * label.len() as f64;
    }
}

fn block(svg: &mut String, run: &ProtocolRun, scale: &Scale, top: f64) {
    let nodes = run.nodes();
    let broken = run.broken().count();
    let verdict = if broken == 0 {
        "every expectation held".to_owned()
    } else {
        format!("{broken} expectation(s) broken")
    };
    let s = &run.summary;
    let unavailable = s.unavailable.map_or("no fault".to_owned(), |(a, b)| {
        format!("{} ms", (b - a) / 1_000_000)
    });
    let leaders = s
        .leader_changes
        .map_or("no leader".to_owned(), |n| format!("leaders elected: {n}"));
    let _ = write!(
        svg,
        r#"<text x="4" y="{:.0}" font-size="12" font-weight="bold">{}</text><text x="{LEFT}" y="{:.0}">longest unavailability {unavailable} · {leaders} · ops {} ok / {} failed / {} unknown · {verdict}</text>"#,
        top + 12.0,
        escape(&run.protocol),
        top + 12.0,
        s.ok,
        s.failed,
        s.unknown
    );
    let lanes_top = top + TITLE;
    let lanes_height = nodes as f64 * (LANE + LANE_GAP);
    faults(svg, run, scale, top, lanes_top, lanes_height);
    for index in 0..nodes {
        let y = lanes_top + index as f64 * (LANE + LANE_GAP);
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end">n{}</text>"#,
            LEFT - 4.0,
            y + LANE - 3.0,
            index + 1
        );
        lane(svg, run, scale, index, y);
    }
    ops(svg, run, scale, lanes_top + lanes_height + 1.0);
}

fn faults(
    svg: &mut String,
    run: &ProtocolRun,
    scale: &Scale,
    top: f64,
    lanes_top: f64,
    height: f64,
) {
    for (i, fault) in run.faults.iter().enumerate() {
        let x0 = scale.x(fault.start_ns);
        let x1 = scale.x(fault.end_ns.unwrap_or(run.end_ns)).max(x0 + 1.0);
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{lanes_top:.1}" width="{:.1}" height="{height:.1}" fill="#d62728" fill-opacity="0.08"/>"##,
            x1 - x0
        );
        for node in &fault.nodes {
            let y = lanes_top + (*node as f64 - 1.0) * (LANE + LANE_GAP) - 1.5;
            let _ = write!(
                svg,
                r##"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#d62728" stroke-width="1.2"/>"##,
                x1 - x0,
                LANE + 3.0
            );
        }
        let label_y = top + 23.0 + 8.0 * (i % 2) as f64;
        let _ = write!(
            svg,
            r##"<text x="{x0:.1}" y="{label_y:.0}" fill="#b22222" font-size="9">{}</text>"##,
            escape(&fault.label)
        );
    }
}

fn lane(svg: &mut String, run: &ProtocolRun, scale: &Scale, index: usize, y: f64) {
    let samples = &run.samples;
    let max_commit = samples
        .iter()
        .map(|s| s.max_commit())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut start = 0;
    for i in 1..=samples.len() {
        let same = i < samples.len()
            && samples[i].nodes[index].kind == samples[start].nodes[index].kind
            && (samples[i].nodes[index].role() != Some(Role::Leader)
                || samples[i].nodes[index].epoch == samples[start].nodes[index].epoch);
        if same {
            continue;
        }
        let state = samples[start].nodes[index];
        let x0 = scale.x(samples[start].time_ns);
        let end = samples.get(i).map_or(run.end_ns, |s| s.time_ns);
        let x1 = scale.x(end).max(x0 + 0.5);
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{LANE}" fill="{}"/>"#,
            x1 - x0,
            colour(&state)
        );
        if state.kind == NodeKind::Up(Role::Leader) && x1 - x0 > 26.0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" fill="#ffffff" font-size="9">{}</text>"##,
                x0 + 2.0,
                y + LANE - 4.0,
                escape(&format_epoch(&run.protocol, state.epoch))
            );
        }
        start = i;
    }
    commit_line(svg, run, scale, index, y, max_commit);
}

/// The commit index of one node as polylines (broken while it is crashed),
/// with a point only where it changes.
fn commit_line(
    svg: &mut String,
    run: &ProtocolRun,
    scale: &Scale,
    index: usize,
    y: f64,
    max_commit: u64,
) {
    let level = |commit: u64| y + LANE - 1.0 - (LANE - 2.0) * commit as f64 / max_commit as f64;
    let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut last: Option<(f64, u64)> = None;
    let mut close = |current: &mut Vec<(f64, f64)>, last: Option<(f64, u64)>| {
        if let Some((x, commit)) = last {
            current.push((x, level(commit)));
        }
        if current.len() > 1 {
            lines.push(std::mem::take(current));
        }
        current.clear();
    };
    for sample in &run.samples {
        let state = sample.nodes[index];
        if state.kind == NodeKind::Crashed {
            close(&mut current, last.take());
            continue;
        }
        let x = scale.x(sample.time_ns);
        match last {
            None => current.push((x, level(state.commit))),
            Some((_, previous)) if previous != state.commit => {
                current.push((x, level(previous)));
                current.push((x, level(state.commit)));
            }
            Some(_) => {}
        }
        last = Some((x, state.commit));
    }
    close(&mut current, last);
    for line in lines {
        let points: Vec<String> = simplify(&line, 0.4)
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#222222" stroke-width="0.8"/>"##,
            points.join(" ")
        );
    }
}

/// Ramer-Douglas-Peucker: drops points closer than `tolerance` pixels to
/// the line through their neighbours kept (keeps the files small).
fn simplify(points: &[(f64, f64)], tolerance: f64) -> Vec<(f64, f64)> {
    if points.len() < 3 {
        return points.to_vec();
    }
    let mut keep = vec![false; points.len()];
    keep[0] = true;
    keep[points.len() - 1] = true;
    let mut stack = vec![(0, points.len() - 1)];
    while let Some((first, last)) = stack.pop() {
        let (x0, y0) = points[first];
        let (x1, y1) = points[last];
        let length = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt().max(1e-9);
        let mut farthest = (0.0, first);
        for (i, &(x, y)) in points.iter().enumerate().take(last).skip(first + 1) {
            let distance = ((y1 - y0) * x - (x1 - x0) * y + x1 * y0 - y1 * x0).abs() / length;
            if distance > farthest.0 {
                farthest = (distance, i);
            }
        }
        if farthest.0 > tolerance {
            keep[farthest.1] = true;
            stack.push((first, farthest.1));
            stack.push((farthest.1, last));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(*p))
        .collect()
}

/// Three thin rows: operations that ended ok, failed, unknown, per sample
/// interval (adjacent intervals merged).
fn ops(svg: &mut String, run: &ProtocolRun, scale: &Scale, y: f64) {
    let _ = write!(
        svg,
        r#"<text x="{:.0}" y="{:.1}" text-anchor="end" font-size="8">ops</text>"#,
        LEFT - 4.0,
        y + 3.0 * OPS_ROW
    );
    let rows = [
        (Outcome::Ok, "#2ca02c"),
        (Outcome::Failed, "#d62728"),
        (Outcome::Unknown, "#ff9f1c"),
    ];
    let bucket_ns = crate::scenario::SAMPLE_NS;
    for (row, (outcome, fill)) in rows.iter().enumerate() {
        let mut buckets: Vec<u64> = run
            .ops
            .iter()
            .filter(|op| op.outcome == Some(*outcome))
            .filter_map(|op| op.ended_ns)
            .map(|t| t / bucket_ns)
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for b in buckets {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == b => *end = b,
                _ => runs.push((b, b)),
            }
        }
        let row_y = y + row as f64 * OPS_ROW;
        for (first, last) in runs {
            let x0 = scale.x(first * bucket_ns);
            let x1 = scale.x((last + 1) * bucket_ns);
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{row_y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
                (x1 - x0).max(0.5),
                OPS_ROW - 0.6
            );
        }
    }
}

fn axis(svg: &mut String, scale: &Scale, y: f64) {
    let seconds = scale.end_ns as f64 / SECOND_NS as f64;
    let step = if seconds > 24.0 {
        5
    } else if seconds > 12.0 {
        2
    } else {
        1
    };
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{y:.0}" x2="{:.0}" y2="{y:.0}" stroke="#444444"/>"##,
        WIDTH - RIGHT
    );
    let mut t = 0;
    while (t as f64) <= seconds + 1e-9 {
        let x = scale.x(t * SECOND_NS);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{y:.0}" x2="{x:.1}" y2="{:.0}" stroke="#444444"/><text x="{x:.1}" y="{:.0}" text-anchor="middle">{t} s</text>"##,
            y + 4.0,
            y + 15.0
        );
        t += step;
    }
}
