//! The side-by-side table (text) and the self-contained `report.html` with
//! SVG charts drawn by `plotters`.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use crate::results::{Comparison, Failover, ProtocolResults, ServiceResults};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 420;

/// The comparison as a plain-text table (what `compare` prints).
pub fn text_table(comparison: &Comparison) -> String {
    let mut out = String::new();
    let run = &comparison.run;
    let floor = &comparison.floor;
    let _ = writeln!(out, "machine: {}", run.machine);
    let _ = writeln!(
        out,
        "run: {} nodes, {} storage{}, started {}, took {:.0} s",
        run.nodes,
        run.storage,
        if run.quick { ", --quick" } else { "" },
        run.started,
        run.duration_secs
    );
    let _ = writeln!(out, "settings: {}", run.settings);
    let _ = writeln!(
        out,
        "floor: QUIC RTT p50 {:.3} ms (p99 {:.3}), fdatasync p50 {:.3} ms (p99 {:.3})",
        floor.quic_rtt.p50_us / 1000.0,
        floor.quic_rtt.p99_us / 1000.0,
        floor.fdatasync.p50_us / 1000.0,
        floor.fdatasync.p99_us / 1000.0
    );
    let _ = writeln!(out);
    load_table(
        &mut out,
        comparison
            .protocols
            .iter()
            .map(|p| (p.protocol.as_str(), p.load.as_slice())),
    );
    if !comparison.service.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "service level: consensus-kv processes + a separate load generator process"
        );
        load_table(
            &mut out,
            comparison
                .service
                .iter()
                .map(|p| (p.protocol.as_str(), p.load.as_slice())),
        );
    }
    let measured: Vec<&ServiceResults> = comparison
        .service
        .iter()
        .filter(|s| {
            !s.failover_kill.samples_ms.is_empty() || !s.failover_pause.samples_ms.is_empty()
        })
        .collect();
    if !measured.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "service-level failover: longest gap between two successful writes of one client \
             around a fault of the leader's process (classic paxos: of the node the client uses)"
        );
        let mut clients: Vec<&str> = measured
            .iter()
            .map(|s| s.failover_client.as_str())
            .collect();
        clients.dedup();
        for client in clients.into_iter().filter(|c| !c.is_empty()) {
            let _ = writeln!(out, "client: {client}");
        }
        let _ = writeln!(
            out,
            "{:<11} {:<8} {:>7} {:>9} {:>8} {:>8} {:>8}",
            "protocol", "fault", "samples", "min ms", "med ms", "p99 ms", "max ms"
        );
        let mut fewer_pauses = false;
        for service in &measured {
            for (fault, failover) in [
                ("kill -9", &service.failover_kill),
                ("SIGSTOP", &service.failover_pause),
            ] {
                let _ = writeln!(
                    out,
                    "{:<11} {:<8} {:>7} {:>9.1} {:>8.1} {:>8.1} {:>8.1}",
                    service.protocol,
                    fault,
                    failover.samples_ms.len(),
                    failover.min_ms,
                    failover.median_ms,
                    failover.p99_ms,
                    failover.max_ms
                );
            }
            fewer_pauses |=
                service.failover_pause.samples_ms.len() < service.failover_kill.samples_ms.len();
        }
        if fewer_pauses && run.quick {
            let _ = writeln!(
                out,
                "(--quick takes fewer SIGSTOP samples than kill -9 samples to stay in its time budget)"
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<11} {:>8} {:>9} {:>8} {:>8} {:>8}   commit p50 / (RTT + fsync)",
        "protocol", "stops", "min ms", "med ms", "p99 ms", "max ms"
    );
    for protocol in &comparison.protocols {
        let failover = &protocol.failover;
        let _ = writeln!(
            out,
            "{:<11} {:>8} {:>9.1} {:>8.1} {:>8.1} {:>8.1}   {:.2}x",
            protocol.protocol,
            failover.samples_ms.len(),
            failover.min_ms,
            failover.median_ms,
            failover.p99_ms,
            failover.max_ms,
            protocol.commit_to_floor_ratio
        );
    }
    phase_table(&mut out, &comparison.protocols);
    out
}

/// Library-level failover phases: the median of each phase per protocol,
/// and the longest sample split into its phases (where the tail comes from).
fn phase_table(out: &mut String, protocols: &[ProtocolResults]) {
    let with_phases: Vec<&ProtocolResults> = protocols
        .iter()
        .filter(|p| !p.failover.phases.is_empty())
        .collect();
    if with_phases.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "failover phases (library level; ms; detection = stop -> first survivor gives the leader up, \
         election -> a survivor leads a newer epoch, first commit -> that leader commits, \
         client -> the client's command commits)"
    );
    let _ = writeln!(
        out,
        "{:<11} {:>7} {:>10} {:>9} {:>13} {:>7}   longest sample (detection + election + first commit + client)",
        "protocol", "phased", "detection", "election", "first commit", "client"
    );
    for protocol in with_phases {
        let failover = &protocol.failover;
        let Some(medians) = failover.phase_medians() else {
            continue;
        };
        let longest = failover
            .phases
            .iter()
            .max_by(|a, b| a.client_ms.total_cmp(&b.client_ms))
            .map(|p| {
                let [d, e, c, k] = p.durations();
                format!("{:.0} = {d:.0} + {e:.0} + {c:.0} + {k:.0}", p.client_ms)
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<11} {:>7} {:>10.1} {:>9.1} {:>13.1} {:>7.1}   {longest}",
            protocol.protocol,
            format!("{}/{}", failover.phases.len(), failover.samples_ms.len()),
            medians[0],
            medians[1],
            medians[2],
            medians[3],
        );
    }
}

fn color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    COLORS[index % COLORS.len()]
}

/// One row per (protocol, client count): ops/s, latency percentiles, errors
/// and, at service level, the load generator's own CPU.
fn load_table<'a>(
    out: &mut String,
    rows: impl Iterator<Item = (&'a str, &'a [crate::results::LoadPoint])>,
) {
    let _ = writeln!(
        out,
        "{:<11} {:>7} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "protocol",
        "clients",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "elections",
        "load CPU"
    );
    for (protocol, points) in rows {
        for point in points {
            let cpu = point
                .load_cpu_cores
                .map_or_else(|| "-".to_string(), |cores| format!("{cores:.2}"));
            let elections = point
                .leader_changes
                .map_or_else(|| "-".to_string(), |changes| changes.to_string());
            let _ = writeln!(
                out,
                "{:<11} {:>7} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>9} {:>9}",
                protocol,
                point.clients,
                point.ops_per_sec,
                point.latency.p50_us / 1000.0,
                point.latency.p99_us / 1000.0,
                point.latency.p999_us / 1000.0,
                point.errors,
                elections,
                cpu
            );
        }
    }
}

fn chart_error<E: std::fmt::Debug>(error: E) -> String {
    format!("drawing a chart failed: {error:?}")
}

/// One protocol's line with point markers and a legend entry.
fn draw_line<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    name: &str,
    color: RGBColor,
    points: Vec<CT::From>,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
    CT::From: Clone + 'static,
{
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        .map_err(chart_error)?
        .label(name.to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )
        .map_err(chart_error)?;
    Ok(())
}

/// The legend box, upper left.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error)
}

/// Throughput (ops/s) against client count, one line per protocol.
pub fn throughput_chart(protocols: &[ProtocolResults]) -> Result<String, String> {
    throughput_chart_titled(
        protocols,
        "Throughput vs closed-loop clients (library level)",
    )
}

/// [`throughput_chart`] with a title.
pub fn throughput_chart_titled(
    protocols: &[ProtocolResults],
    title: &str,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let max_clients = protocols
            .iter()
            .flat_map(|p| p.load.iter().map(|l| l.clients as u32))
            .max()
            .unwrap_or(1)
            .max(2);
        let max_ops = protocols
            .iter()
            .flat_map(|p| p.load.iter().map(|l| l.ops_per_sec))
            .fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((1u32..max_clients + 1).log_scale(), 0f64..max_ops * 1.1)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("clients")
            .y_desc("committed ops/s")
            .x_label_formatter(&|x| x.to_string())
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(chart_error)?;
        for (index, protocol) in protocols.iter().enumerate() {
            let points: Vec<(u32, f64)> = protocol
                .load
                .iter()
                .map(|l| (l.clients as u32, l.ops_per_sec))
                .collect();
            draw_line(&mut chart, &protocol.protocol, color(index), points)?;
        }
        draw_legend(&mut chart)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Latency percentiles (log scale) at the given client count, one line per protocol.
pub fn latency_chart(protocols: &[ProtocolResults], clients: usize) -> Result<String, String> {
    const LABELS: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let series: Vec<(String, Vec<f64>)> = protocols
            .iter()
            .filter_map(|p| {
                let point = p.load.iter().find(|l| l.clients == clients)?;
                let l = &point.latency;
                Some((
                    p.protocol.clone(),
                    vec![l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us]
                        .into_iter()
                        .map(|us| (us / 1000.0).max(0.001))
                        .collect(),
                ))
            })
            .collect();
        let max_ms = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Command latency at {clients} client(s)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..4.5f64, (0.01f64..max_ms * 2.0).log_scale())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && (0.0..5.0).contains(&i) {
                    LABELS[i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .x_desc("percentile")
            .y_desc("latency (ms, log)")
            .draw()
            .map_err(chart_error)?;
        for (index, (name, values)) in series.iter().enumerate() {
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect();
            draw_line(&mut chart, name, color(index), points)?;
        }
        draw_legend(&mut chart)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Every failover sample as a point per protocol, with the median marked.
pub fn failover_chart(protocols: &[ProtocolResults]) -> Result<String, String> {
    let groups: Vec<(String, &Failover, RGBColor)> = protocols
        .iter()
        .enumerate()
        .map(|(index, p)| (p.protocol.clone(), &p.failover, color(index)))
        .collect();
    samples_chart(
        &groups,
        "Failover: leader stop to next commit (library level)",
    )
}

/// Service-level failover: per protocol, the `kill -9` and the `SIGSTOP`
/// samples side by side (the longest write gap of one client), medians marked.
pub fn service_failover_chart(service: &[ServiceResults]) -> Result<String, String> {
    let groups: Vec<(String, &Failover, RGBColor)> = service
        .iter()
        .enumerate()
        .flat_map(|(index, s)| {
            [
                (
                    format!("{} kill -9", s.protocol),
                    &s.failover_kill,
                    color(index),
                ),
                (
                    format!("{} SIGSTOP", s.protocol),
                    &s.failover_pause,
                    color(index),
                ),
            ]
        })
        .collect();
    samples_chart(
        &groups,
        "Service failover: longest write gap, kill -9 / SIGSTOP of the leader",
    )
}

/// Samples as points, one column per group, each column's median marked.
fn samples_chart(groups: &[(String, &Failover, RGBColor)], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let names: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
        let max_ms = groups
            .iter()
            .flat_map(|g| g.1.samples_ms.iter().copied())
            .fold(100.0, f64::max);
        let count = groups.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..count - 0.5, 0f64..max_ms * 1.1)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(groups.len().max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .y_desc("ms")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(chart_error)?;
        for (index, (_, failover, color)) in groups.iter().enumerate() {
            let color = *color;
            let samples = &failover.samples_ms;
            let spread = 0.25;
            let points = samples.iter().enumerate().map(|(i, ms)| {
                let offset = if samples.len() > 1 {
                    -spread + 2.0 * spread * i as f64 / (samples.len() - 1) as f64
                } else {
                    0.0
                };
                Circle::new((index as f64 + offset, *ms), 3, color.filled())
            });
            chart.draw_series(points).map_err(chart_error)?;
            let median = failover.median_ms;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(index as f64 - 0.35, median), (index as f64 + 0.35, median)],
                    BLACK.stroke_width(2),
                )))
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Stacked bars: per protocol, the median of each failover phase.
pub fn failover_phases_chart(protocols: &[ProtocolResults]) -> Result<String, String> {
    let bars: Vec<(&str, [f64; 4])> = protocols
        .iter()
        .filter_map(|p| Some((p.protocol.as_str(), p.failover.phase_medians()?)))
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let max_ms = bars
            .iter()
            .map(|(_, parts)| parts.iter().sum::<f64>())
            .fold(100.0, f64::max);
        let count = bars.len().max(1) as f64;
        let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Failover phases: median ms of each (library level)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..count - 0.5, 0f64..max_ms * 1.15)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|x| {
                let index = x.round();
                if (x - index).abs() < 0.01 && index >= 0.0 {
                    names.get(index as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("ms")
            .draw()
            .map_err(chart_error)?;
        for (part, name) in crate::results::FailoverPhases::NAMES.iter().enumerate() {
            let part_color = color(part);
            let rects: Vec<Rectangle<(f64, f64)>> = bars
                .iter()
                .enumerate()
                .map(|(index, (_, parts))| {
                    let bottom: f64 = parts[..part].iter().sum();
                    let x = index as f64;
                    Rectangle::new(
                        [(x - 0.3, bottom), (x + 0.3, bottom + parts[part])],
                        part_color.filled(),
                    )
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(chart_error)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], part_color.filled())
                });
        }
        draw_legend(&mut chart)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn has_service_failover(comparison: &Comparison) -> bool {
    comparison
        .service
        .iter()
        .any(|s| !s.failover_kill.samples_ms.is_empty() || !s.failover_pause.samples_ms.is_empty())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The self-contained HTML report.
pub fn html_report(comparison: &Comparison) -> Result<String, String> {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>consensus-toolkit: protocol comparison</title>\
         <style>body{{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}figure{{margin:1.5em 0}}</style></head><body>\
         <h1>Paxos, Multi-Paxos, Raft and ZAB, side by side</h1>\
         <p>Every protocol ran through the same runtime, QUIC transport, storage and workload in this one run, \
         so the differences are the protocols' own.</p><pre>{}</pre>",
        escape(&text_table(comparison))
    );
    let _ = write!(
        html,
        "<figure>{}</figure>",
        throughput_chart(&comparison.protocols)?
    );
    let mut client_counts: Vec<usize> = comparison
        .protocols
        .iter()
        .flat_map(|p| p.load.iter().map(|l| l.clients))
        .collect();
    client_counts.sort_unstable();
    client_counts.dedup();
    for clients in client_counts {
        if clients == 1 || clients == 64 {
            let _ = write!(
                html,
                "<figure>{}</figure>",
                latency_chart(&comparison.protocols, clients)?
            );
        }
    }
    let _ = write!(
        html,
        "<figure>{}</figure>",
        failover_chart(&comparison.protocols)?
    );
    if comparison
        .protocols
        .iter()
        .any(|p| !p.failover.phases.is_empty())
    {
        let _ = write!(
            html,
            "<figure>{}</figure>",
            failover_phases_chart(&comparison.protocols)?
        );
    }
    if has_service_failover(comparison) {
        let _ = write!(
            html,
            "<figure>{}</figure>",
            service_failover_chart(&comparison.service)?
        );
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

/// Writes `results.json` and `report.html` into `dir`.
pub fn write_report(comparison: &Comparison, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(comparison).map_err(|e| e.to_string())?;
    let json_path = dir.join("results.json");
    std::fs::write(&json_path, json)
        .map_err(|e| format!("writing {}: {e}", json_path.display()))?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html_report(comparison)?)
        .map_err(|e| format!("writing {}: {e}", html_path.display()))?;
    for (name, svg) in [
        ("throughput.svg", throughput_chart(&comparison.protocols)?),
        ("failover.svg", failover_chart(&comparison.protocols)?),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if comparison
        .protocols
        .iter()
        .any(|p| !p.failover.phases.is_empty())
    {
        let path = dir.join("failover-phases.svg");
        std::fs::write(&path, failover_phases_chart(&comparison.protocols)?)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if has_service_failover(comparison) {
        let path = dir.join("service-failover.svg");
        std::fs::write(&path, service_failover_chart(&comparison.service)?)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{LoadPoint, Percentiles, RunInfo};

    fn protocol(name: &str, scale: f64) -> ProtocolResults {
        ProtocolResults {
            protocol: name.into(),
            load: [1usize, 16, 64, 256]
                .iter()
                .map(|&clients| LoadPoint {
                    clients,
                    ops_per_sec: scale * clients as f64,
                    latency: Percentiles {
                        count: 100,
                        p50_us: 500.0,
                        p90_us: 800.0,
                        p99_us: 1500.0,
                        p999_us: 3000.0,
                        max_us: 4000.0,
                    },
                    errors: 0,
                    load_cpu_cores: None,
                    leader_changes: None,
                })
                .collect(),
            failover: Failover::of(vec![180.0, 210.0, 250.0]),
            commit_to_floor_ratio: 1.3,
        }
    }

    #[test]
    fn report_contains_every_protocol_and_chart() {
        let comparison = Comparison {
            run: RunInfo {
                machine: "test".into(),
                nodes: 3,
                storage: "memory".into(),
                ..RunInfo::default()
            },
            floor: Default::default(),
            protocols: vec![protocol("raft", 1000.0), protocol("zab", 900.0)],
            service: vec![],
        };
        let html = html_report(&comparison).unwrap();
        assert_eq!(
            html.matches("<svg").count(),
            4,
            "throughput, 2 latency, failover"
        );
        for name in ["raft", "zab"] {
            assert!(html.contains(name));
        }
        let table = text_table(&comparison);
        assert!(table.contains("256"), "{table}");
        let dir = tempfile::tempdir().unwrap();
        write_report(&comparison, dir.path()).unwrap();
        let json = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let back: Comparison = serde_json::from_str(&json).unwrap();
        assert_eq!(back, comparison);
    }

    #[test]
    fn service_failover_in_table_chart_and_json() {
        let comparison = Comparison {
            run: RunInfo {
                machine: "test".into(),
                nodes: 3,
                storage: "disk".into(),
                quick: true,
                ..RunInfo::default()
            },
            floor: Default::default(),
            protocols: vec![protocol("raft", 1000.0)],
            service: vec![ServiceResults {
                protocol: "raft".into(),
                load: protocol("raft", 500.0).load,
                failover_kill: Failover::of(vec![210.0, 230.0, 260.0]),
                failover_pause: Failover::of(vec![240.0, 250.0]),
                failover_client: "attempt timeout 100 ms".into(),
            }],
        };
        let table = text_table(&comparison);
        assert!(table.contains("kill -9"), "{table}");
        assert!(table.contains("SIGSTOP"), "{table}");
        assert!(table.contains("attempt timeout 100 ms"), "{table}");
        assert!(table.contains("fewer SIGSTOP samples"), "{table}");
        let html = html_report(&comparison).unwrap();
        assert_eq!(
            html.matches("<svg").count(),
            5,
            "throughput, 2 latency, failover, service failover"
        );
        assert!(html.contains("raft SIGSTOP"));
        let dir = tempfile::tempdir().unwrap();
        write_report(&comparison, dir.path()).unwrap();
        assert!(dir.path().join("service-failover.svg").exists());
        let json = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let back: Comparison = serde_json::from_str(&json).unwrap();
        assert_eq!(back, comparison);
    }

    #[test]
    fn old_results_without_service_failover_still_load() {
        let old = r#"{"protocol":"raft","load":[]}"#;
        let service: ServiceResults = serde_json::from_str(old).unwrap();
        assert!(service.failover_kill.samples_ms.is_empty());
        assert!(service.failover_pause.samples_ms.is_empty());
    }

    #[test]
    fn failover_phases_in_table_chart_and_json() {
        use crate::results::FailoverPhases;
        let mut raft = protocol("raft", 1000.0);
        raft.failover.phases = vec![
            FailoverPhases {
                suspected_ms: 150.0,
                elected_ms: 170.0,
                committed_ms: 175.0,
                client_ms: 180.0,
            },
            FailoverPhases {
                suspected_ms: 160.0,
                elected_ms: 200.0,
                committed_ms: 205.0,
                client_ms: 210.0,
            },
            FailoverPhases {
                suspected_ms: 155.0,
                elected_ms: 235.0,
                committed_ms: 240.0,
                client_ms: 250.0,
            },
        ];
        assert_eq!(raft.failover.phase_medians(), Some([155.0, 40.0, 5.0, 5.0]));
        let paxos = protocol("paxos", 300.0);
        assert_eq!(paxos.failover.phase_medians(), None);
        let comparison = Comparison {
            run: RunInfo::default(),
            floor: Default::default(),
            protocols: vec![raft, paxos],
            service: vec![],
        };
        let table = text_table(&comparison);
        assert!(table.contains("failover phases"), "{table}");
        assert!(table.contains("250 = 155 + 80 + 5 + 10"), "{table}");
        assert!(
            !table
                .lines()
                .any(|l| l.starts_with("paxos") && l.contains("/")),
            "{table}"
        );
        let html = html_report(&comparison).unwrap();
        assert_eq!(
            html.matches("<svg").count(),
            5,
            "throughput, 2 latency, failover, failover phases"
        );
        assert!(html.contains("first commit"));
        let dir = tempfile::tempdir().unwrap();
        write_report(&comparison, dir.path()).unwrap();
        assert!(dir.path().join("failover-phases.svg").exists());
        let json = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let back: Comparison = serde_json::from_str(&json).unwrap();
        assert_eq!(back, comparison);
    }

    #[test]
    fn failover_summary() {
        let f = Failover::of(vec![300.0, 100.0, 200.0]);
        assert_eq!((f.min_ms, f.median_ms, f.max_ms), (100.0, 200.0, 300.0));
        assert_eq!(Failover::of(vec![]).median_ms, 0.0);
    }
}
