//! Renderings of a [`ScenarioOutcome`](crate::scenario::ScenarioOutcome):
//! the terminal timeline ([`text`]) and the self-contained HTML page with
//! SVG swimlanes ([`html`], [`svg`]).

pub mod html;
pub mod svg;
pub mod text;
