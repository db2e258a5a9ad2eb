//! A source's history as a picture: size, files and bytes added per
//! snapshot over time, and the job runs with failures marked. People see
//! growth and gaps in a chart long before they find them in a table. Drawn
//! here as SVG, so the page needs no script and no library; every point
//! carries a tooltip with its figures.

use crate::spec::{format_bytes, format_time};
use kast_engine::activity::{Activity, Outcome};
use maud::{Markup, html};

/// One snapshot's figures.
pub struct Point {
    pub time_ns: i64,
    /// The snapshot's id, short, for the tooltip.
    pub label: String,
    pub logical_bytes: u64,
    pub files: u64,
    pub bytes_added: u64,
}

const WIDTH: f64 = 860.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const PANEL: f64 = 96.0;
const GAP: f64 = 34.0;
const RUNS: f64 = 26.0;

/// Maps times onto the plot's width; one instant is drawn in the middle.
struct TimeAxis {
    first: i64,
    last: i64,
}

impl TimeAxis {
    fn x(&self, t: i64) -> f64 {
        let plot = WIDTH - LEFT - RIGHT;
        if self.last <= self.first {
            return LEFT + plot / 2.0;
        }
        LEFT + (t.saturating_sub(self.first)) as f64 / (self.last - self.first) as f64 * plot
    }
}

/// What one panel draws: its name, how a value reads, and whether it is a
/// line (a level over time) or bars (an amount per snapshot).
struct Panel<'a> {
    title: &'a str,
    value: fn(&Point) -> u64,
    shown: fn(u64) -> String,
    bars: bool,
}

/// The chart: three panels over one time axis, then a strip of job runs
/// (green: success, amber: partial, red: failure). Nothing to draw gives
/// a sentence instead.
pub fn history(points: &[Point], runs: &[&Activity]) -> Markup {
    let times = points
        .iter()
        .map(|p| p.time_ns)
        .chain(runs.iter().map(|r| r.started_ns));
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return html! { p { "No snapshots or job runs of this source yet." } };
    };
    let axis = TimeAxis { first, last };
    let panels = [
        Panel {
            title: "size",
            value: |p| p.logical_bytes,
            shown: format_bytes,
            bars: false,
        },
        Panel {
            title: "files",
            value: |p| p.files,
            shown: |n| n.to_string(),
            bars: false,
        },
        Panel {
            title: "added",
            value: |p| p.bytes_added,
            shown: format_bytes,
            bars: true,
        },
    ];
    let runs_top = panels.len() as f64 * (PANEL + GAP);
    let height = runs_top + RUNS + 24.0;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (height) } role="img"
            aria-label={ "history: " (points.len()) " snapshots, " (runs.len()) " job runs" } {
            @for (i, panel) in panels.iter().enumerate() {
                (draw_panel(panel, points, &axis, i as f64 * (PANEL + GAP)))
            }
            text.label x="4" y=(runs_top + RUNS / 2.0 + 4.0) { "job runs" }
            line.axis x1=(LEFT) x2=(WIDTH - RIGHT) y1=(runs_top + RUNS / 2.0) y2=(runs_top + RUNS / 2.0) {}
            @for run in runs {
                @let class = match run.outcome {
                    Outcome::Success => "run good",
                    Outcome::Partial => "run partial",
                    Outcome::Failure => "run bad",
                };
                circle class=(class) cx=(axis.x(run.started_ns)) cy=(runs_top + RUNS / 2.0) r="5" {
                    title {
                        (format_time(run.started_ns)) " " (run.job) ": "
                        (format!("{:?}", run.outcome).to_lowercase())
                        @if let Some(reason) = &run.reason { " (" (reason) ")" }
                    }
                }
            }
            text.label x=(LEFT) y=(height - 4.0) { (format_time(first)) }
            text.label.end x=(WIDTH - RIGHT) y=(height - 4.0) text-anchor="end" { (format_time(last)) }
        }
    }
}

fn draw_panel(panel: &Panel<'_>, points: &[Point], axis: &TimeAxis, top: f64) -> Markup {
    let max = points.iter().map(panel.value).max().unwrap_or(0).max(1);
    let y = |v: u64| top + 14.0 + PANEL * (1.0 - v as f64 / max as f64);
    let base = top + 14.0 + PANEL;
    let line: String = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", axis.x(p.time_ns), y((panel.value)(p))))
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        text.label x="4" y=(top + 12.0) { (panel.title) }
        text.label x=(LEFT - 6.0) y=(top + 26.0) text-anchor="end" { ((panel.shown)(max)) }
        text.label x=(LEFT - 6.0) y=(base) text-anchor="end" { "0" }
        line.axis x1=(LEFT) x2=(WIDTH - RIGHT) y1=(base) y2=(base) {}
        @if !panel.bars && points.len() > 1 {
            polyline.series points=(line) {}
        }
        @for p in points {
            @let (x, v) = (axis.x(p.time_ns), (panel.value)(p));
            @let tip = format!("{} {}: {} {}", format_time(p.time_ns), p.label, (panel.shown)(v), panel.title);
            @if panel.bars {
                rect.bar x=(format!("{:.1}", x - 2.0)) y=(format!("{:.1}", y(v).min(base - 1.0))) width="4"
                    height=(format!("{:.1}", (base - y(v)).max(1.0))) { title { (tip) } }
            } @else {
                circle.point cx=(format!("{x:.1}")) cy=(format!("{:.1}", y(v))) r="3" { title { (tip) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(started_ns: i64, outcome: Outcome) -> Activity {
        serde_json::from_value(serde_json::json!({
            "job": "nightly", "sources": ["fs:///data"], "host": "h", "started_ns": started_ns,
            "duration_ms": 1, "outcome": outcome, "reason": null, "snapshots": [],
            "bytes_read": 0, "bytes_added": 0, "files_new": 0, "files_changed": 0,
            "files_unchanged": 0, "errors": 0, "error_samples": [], "removed": [], "check": null,
        }))
        .unwrap()
    }

    #[test]
    fn every_snapshot_and_run_is_drawn_and_failures_stand_out() {
        let points: Vec<Point> = (0..5)
            .map(|i| Point {
                time_ns: i * 86_400_000_000_000,
                label: format!("id{i}"),
                logical_bytes: 1000 * (i as u64 + 1),
                files: 10 + i as u64,
                bytes_added: if i == 3 { 5000 } else { 10 },
            })
            .collect();
        let runs = [
            run(0, Outcome::Success),
            run(2 * 86_400_000_000_000, Outcome::Failure),
        ];
        let runs: Vec<&Activity> = runs.iter().collect();
        let svg = history(&points, &runs).into_string();
        assert_eq!(svg.matches("<circle class=\"point\"").count(), 10, "{svg}");
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 5);
        assert_eq!(svg.matches("class=\"run bad\"").count(), 1);
        assert_eq!(svg.matches("class=\"run good\"").count(), 1);
        // Each point says what it is; the largest addition tops its panel.
        assert!(svg.contains("id3: 4.9 KiB added"), "{svg}");
        assert!(svg.contains(">4.9 KiB</text>"), "{svg}");
        assert!(history(&[], &[]).into_string().contains("No snapshots"));
    }
}
