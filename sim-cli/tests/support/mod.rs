//! Shared by the scenario tests: running a scenario on the four protocols,
//! golden files, and a small well-formedness checker for the HTML page and
//! the SVG.

#![allow(dead_code)]

use std::path::PathBuf;

use consensus_sim_cli::protocols::{scenario_runner, PROTOCOLS};
use consensus_sim_cli::scenario::{ScenarioConfig, ScenarioName, ScenarioOutcome};

/// Runs the scenario on the given protocols (two threads at a time at
/// most: the machine has two cores).
pub fn run(scenario: ScenarioName, protocols: &[&str], config: ScenarioConfig) -> ScenarioOutcome {
    let runners: Vec<_> = protocols
        .iter()
        .map(|p| scenario_runner(p).expect("linked protocol"))
        .collect();
    let mut runs = Vec::new();
    for pair in runners.chunks(2) {
        let done: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .map(|runner| scope.spawn(move || runner(scenario, &config)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        runs.extend(done);
    }
    ScenarioOutcome {
        scenario,
        config,
        runs,
    }
}

/// All four protocols, default config.
pub fn run_all(scenario: ScenarioName) -> ScenarioOutcome {
    run(scenario, PROTOCOLS, ScenarioConfig::default())
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/scenarios")
        .join(format!("{name}.txt"))
}

/// Compares `actual` with the golden file `name`; `REWRITE=1` rewrites it.
pub fn golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("REWRITE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with REWRITE=1 cargo test -p consensus-sim-cli --test scenarios",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from this run, first at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             If the change is intended, review the diff after \
             REWRITE=1 cargo test -p consensus-sim-cli --test scenarios\n\nthis run:\n{actual}",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

/// The SVG elements the swimlanes may use.
const SVG_ELEMENTS: &[&str] = &["svg", "title", "rect", "text", "line", "polyline"];
/// HTML elements the page may use.
const HTML_ELEMENTS: &[&str] = &[
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "em", "code", "ul",
    "li", "strong", "table", "tr", "th", "td", "pre",
];

/// One tag of the document.
#[derive(Debug)]
struct Tag<'a> {
    name: &'a str,
    closing: bool,
    self_closing: bool,
    attributes: Vec<(&'a str, &'a str)>,
}

fn parse_tag(inner: &str) -> Result<Tag<'_>, String> {
    let closing = inner.starts_with('/');
    let inner = inner.trim_start_matches('/');
    let self_closing = inner.ends_with('/');
    let inner = inner.trim_end_matches('/').trim_end();
    let name_end = inner.find(char::is_whitespace).unwrap_or(inner.len());
    let name = &inner[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("bad tag name in <{inner}>"));
    }
    let mut attributes = Vec::new();
    let mut rest = inner[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute without value in <{inner}>"))?;
        let key = rest[..eq].trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
        {
            return Err(format!("bad attribute name {key:?} in <{inner}>"));
        }
        let after = &rest[eq + 1..];
        if !after.starts_with('"') {
            return Err(format!("unquoted attribute {key} in <{inner}>"));
        }
        let close = after[1..]
            .find('"')
            .ok_or_else(|| format!("unterminated attribute {key} in <{inner}>"))?;
        attributes.push((key, &after[1..1 + close]));
        rest = after[close + 2..].trim_start();
    }
    Ok(Tag {
        name,
        closing,
        self_closing,
        attributes,
    })
}

/// Checks that `document` is well formed: every tag closes in order (void
/// elements are written self-closed), attributes are quoted, text has no
/// stray `<` or `>`, entities are known; only the expected elements appear,
/// SVG elements only inside `<svg>` and with finite, non-negative geometry;
/// nothing refers to an external resource. Returns the number of `<svg>`
/// elements.
pub fn check_markup(document: &str, html: bool) -> Result<usize, String> {
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import",
    ] {
        if document.contains(forbidden) {
            return Err(format!("external resource or script: {forbidden}"));
        }
    }
    if document
        .replace("http://www.w3.org/2000/svg", "")
        .contains("http")
    {
        return Err("a URL other than the SVG namespace".into());
    }
    let body = document
        .strip_prefix("<!DOCTYPE html>\n")
        .unwrap_or(document);
    if html && body.len() == document.len() {
        return Err("no <!DOCTYPE html>".into());
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut svgs = 0;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open])?;
        let close = rest[open..].find('>').ok_or("unterminated tag")? + open;
        let tag = parse_tag(&rest[open + 1..close])?;
        let in_svg = stack.contains(&"svg");
        let known = if in_svg || tag.name == "svg" {
            SVG_ELEMENTS.contains(&tag.name)
        } else {
            html && HTML_ELEMENTS.contains(&tag.name)
        };
        if !known {
            return Err(format!("unexpected element <{}>", tag.name));
        }
        if tag.closing {
            match stack.pop() {
                Some(top) if top == tag.name => {}
                other => return Err(format!("</{}> closes {other:?}", tag.name)),
            }
        } else {
            if tag.name == "svg" {
                svgs += 1;
                check_svg_root(&tag)?;
            }
            if in_svg {
                check_geometry(&tag)?;
            }
            if tag.name == "meta" && !tag.self_closing {
                return Err("<meta> must be written self-closed".into());
            }
            if !tag.self_closing {
                stack.push(tag.name);
            }
        }
        rest = &rest[close + 1..];
    }
    check_text(rest)?;
    if !stack.is_empty() {
        return Err(format!("unclosed elements: {stack:?}"));
    }
    Ok(svgs)
}

fn check_text(text: &str) -> Result<(), String> {
    if text.contains('>') {
        return Err(format!(
            "stray '>' in text: {:?}",
            &text[..text.len().min(80)]
        ));
    }
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let end = rest[amp..].find(';').ok_or("unterminated entity")? + amp;
        let entity = &rest[amp..=end];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].contains(&entity) {
            return Err(format!("unknown entity {entity}"));
        }
        rest = &rest[end + 1..];
    }
    Ok(())
}

fn check_svg_root(tag: &Tag<'_>) -> Result<(), String> {
    let get = |key: &str| {
        tag.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    };
    if get("xmlns") != Some("http://www.w3.org/2000/svg") {
        return Err("<svg> without the SVG namespace".into());
    }
    let view_box: Vec<f64> = get("viewBox")
        .ok_or("<svg> without viewBox")?
        .split_whitespace()
        .map(|n| n.parse::<f64>().map_err(|e| format!("viewBox: {e}")))
        .collect::<Result<_, _>>()?;
    if view_box.len() != 4 || view_box[2] <= 0.0 || view_box[3] <= 0.0 {
        return Err(format!("bad viewBox {view_box:?}"));
    }
    Ok(())
}

fn check_geometry(tag: &Tag<'_>) -> Result<(), String> {
    for (key, value) in &tag.attributes {
        let numeric = ["x", "y", "x1", "x2", "y1", "y2", "width", "height"].contains(key);
        if numeric {
            let number: f64 = value
                .parse()
                .map_err(|e| format!("<{} {key}={value:?}>: {e}", tag.name))?;
            if !number.is_finite() || (["width", "height"].contains(key) && number < 0.0) {
                return Err(format!("<{} {key}={value}>", tag.name));
            }
        }
        if *key == "points" {
            for pair in value.split_whitespace() {
                let (x, y) = pair.split_once(',').ok_or("bad point")?;
                let ok = [x, y]
                    .iter()
                    .all(|n| n.parse::<f64>().is_ok_and(f64::is_finite));
                if !ok {
                    return Err(format!("bad point {pair}"));
                }
            }
        }
    }
    Ok(())
}
