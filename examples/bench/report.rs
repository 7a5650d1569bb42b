//! The report: tables on stdout (each section once per backend), the figures as JSON, and
//! throughput by concurrency as an SVG chart.

use std::collections::BTreeSet;
use std::path::Path;

use comfy_table::presets::UTF8_FULL;
use comfy_table::{CellAlignment, Table};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::Result;
use crate::measure::{Backend, Group, Row, Rss, Summary, Target};

/// The backends, in the order they are printed.
const BACKENDS: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];
/// The report's sections, in the order they are printed.
const GROUPS: [Group; 8] = [
    Group::Append,
    Group::Read,
    Group::Elixir,
    Group::Subscriptions,
    Group::Categories,
    Group::Retention,
    Group::Grpc,
    Group::Memory,
];

/// Prints one table per non-empty group of each backend, then which targets were met.
pub fn print(rows: &[Row]) {
    for backend in BACKENDS {
        for group in GROUPS {
            let rows: Vec<&Row> = rows.iter().filter(|row| row.backend == backend && row.group == group).collect();
            if rows.is_empty() {
                continue;
            }
            let table = match group {
                Group::Elixir => elixir_table(&rows),
                Group::Memory => memory_table(&rows),
                Group::Append
                | Group::Read
                | Group::Subscriptions
                | Group::Categories
                | Group::Retention
                | Group::Grpc => throughput_table(&rows),
            };
            println!("\n{}: {}\n{table}", backend.name(), title(group));
        }
    }
    println!("\n{}", targets_summary(rows));
}

fn title(group: Group) -> &'static str {
    match group {
        Group::Append => "appends",
        Group::Read => "reads",
        Group::Elixir => "Elixir EventStore's benchmark shapes (µs/op, lower is better)",
        Group::Subscriptions => "subscriptions",
        Group::Retention => "stream metadata and scavenging",
        Group::Categories => "categories and filters",
        Group::Grpc => "chronik serve (the KurrentDB protocol over gRPC, beside the same work in process)",
        Group::Memory => "memory",
    }
}

fn throughput_table(rows: &[&Row]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL).set_header(vec![
        "workload",
        "events",
        "events/s",
        "raw baseline",
        "raw events/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "CPU µs/event",
        "target",
    ]);
    for row in rows {
        let (raw_name, raw_rate) = match &row.raw {
            Some((name, raw)) => (name.clone(), thousands(raw.rate())),
            None => ("-".to_string(), "-".to_string()),
        };
        table.add_row(vec![
            row.name.clone(),
            thousands(row.chronik.events as f64),
            thousands(row.chronik.rate()),
            raw_name,
            raw_rate,
            row.ratio().map_or_else(|| "-".to_string(), times),
            format!("{:.2}", row.chronik.percentile_ms(0.50)),
            format!("{:.2}", row.chronik.percentile_ms(0.99)),
            cpu_text(row),
            target_text(row),
        ]);
    }
    align_right(&mut table, &[1, 2, 4, 5, 6, 7, 8]);
    table
}

fn elixir_table(rows: &[&Row]) -> Table {
    let with_raw = rows.iter().any(|row| row.raw.is_some());
    let with_target = rows.iter().any(|row| row.target.is_some());
    let mut header = vec!["workload", "chronik µs/op"];
    if with_raw {
        header.push("raw µs/op");
    }
    header.extend(["Elixir EventStore µs/op (published)", "chronik vs Elixir"]);
    if with_target {
        header.push("target");
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL).set_header(header.clone());
    for row in rows {
        let chronik_us = row.chronik.mean_us();
        let mut cells = vec![row.name.clone(), micros(chronik_us)];
        if with_raw {
            cells.push(row.raw.as_ref().map_or_else(|| "-".to_string(), |(_, raw)| micros(raw.mean_us())));
        }
        cells.push(row.elixir_us.map_or_else(|| "-".to_string(), micros));
        cells.push(match row.elixir_us {
            Some(elixir) if chronik_us > 0.0 && elixir > 0.0 => {
                let (factor, verdict) = if elixir >= chronik_us {
                    (elixir / chronik_us, "faster")
                } else {
                    (chronik_us / elixir, "slower")
                };
                if factor < 100.0 { format!("{factor:.1}x {verdict}") } else { format!("{factor:.0}x {verdict}") }
            }
            _ => "-".to_string(),
        });
        if with_target {
            cells.push(target_text(row));
        }
        table.add_row(cells);
    }
    let numeric: Vec<usize> = (1..header.len() - usize::from(with_target)).collect();
    align_right(&mut table, &numeric);
    table
}

fn memory_table(rows: &[&Row]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL).set_header(vec![
        "workload",
        "RSS before MiB",
        "RSS peak MiB",
        "RSS after MiB",
        "growth MiB (peak - before)",
        "target",
    ]);
    for row in rows {
        let mut cells = vec![row.name.clone()];
        match row.rss {
            Some(rss) => cells.extend([
                format!("{:.1}", rss.before_mib),
                format!("{:.1}", rss.peak_mib),
                format!("{:.1}", rss.after_mib),
                format!("{:+.1}", rss.peak_mib - rss.before_mib),
            ]),
            None => cells.extend(["-", "-", "-", "-"].map(String::from)),
        }
        cells.push(target_text(row));
        table.add_row(cells);
    }
    align_right(&mut table, &[1, 2, 3, 4]);
    table
}

fn align_right(table: &mut Table, columns: &[usize]) {
    for &column in columns {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// What a row is held to, and whether it made it: `>= 0.5x raw: met`.
/// The machine's CPU time per event, chronik's and (after a slash) the raw baseline's.
fn cpu_text(row: &Row) -> String {
    let per_event =
        |m: &crate::measure::Measured| m.cpu_us_per_event().map_or_else(|| "-".to_string(), |us| format!("{us:.0}"));
    match &row.raw {
        Some((_, raw)) if raw.cpu.is_some() => format!("{} / {}", per_event(&row.chronik), per_event(raw)),
        _ => per_event(&row.chronik),
    }
}

fn target_text(row: &Row) -> String {
    let Some(target) = row.target else {
        return "-".to_string();
    };
    let verdict = match row.met() {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    };
    format!("{}: {verdict}", describe(target))
}

fn describe(target: Target) -> String {
    match target {
        Target::RatioAtLeast(x) => format!(">= {x}x raw"),
        Target::RateAtLeast(x) => format!(">= {} events/s", thousands(x)),
        Target::P99BelowMs(x) => format!("p99 < {x} ms"),
        Target::RssBelowMib(x) => format!("peak < {x} MiB"),
        Target::RssGrowthBelowMib(x) => format!("growth < {x} MiB"),
    }
}

/// One line: how many targets were met, and which were not.
fn targets_summary(rows: &[Row]) -> String {
    let held: Vec<&Row> = rows.iter().filter(|row| row.target.is_some()).collect();
    if held.is_empty() {
        return "targets: none set".to_string();
    }
    let met = held.iter().filter(|row| row.met() == Some(true)).count();
    // Both backends have rows of the same name.
    let named = |row: &&Row| format!("{}: {}", row.backend.name(), row.name);
    let missed: Vec<String> = held.iter().filter(|row| row.met() == Some(false)).map(named).collect();
    let unknown: Vec<String> = held.iter().filter(|row| row.met().is_none()).map(named).collect();
    let mut line = if missed.is_empty() && unknown.is_empty() {
        format!("targets: all {} met", held.len())
    } else {
        format!("targets: {met} of {} met", held.len())
    };
    if !missed.is_empty() {
        line.push_str(&format!("; {} MISSED: {}", missed.len(), missed.join(", ")));
    }
    if !unknown.is_empty() {
        line.push_str(&format!("; {} not measured: {}", unknown.len(), unknown.join(", ")));
    }
    line
}

/// A whole number with thousands separators: `1,234,567`.
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if x.round() < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio: `0.62x`.
fn times(x: f64) -> String {
    if x.is_finite() { format!("{x:.2}x") } else { "-".to_string() }
}

/// Microseconds per operation, with the precision that matters at their size.
fn micros(us: f64) -> String {
    if !us.is_finite() || us <= 0.0 {
        "-".to_string()
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        thousands(us)
    }
}

#[derive(Serialize)]
struct Document<'a> {
    quick: bool,
    chronik_version: &'static str,
    machine: Machine,
    rows: Vec<JsonRow<'a>>,
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    backend: Backend,
    group: Group,
    name: &'a str,
    concurrency: Option<usize>,
    chronik: Summary,
    raw: Option<JsonRaw<'a>>,
    ratio: Option<f64>,
    rss: Option<Rss>,
    elixir_us_per_op: Option<f64>,
    target: Option<Target>,
    met: Option<bool>,
}

#[derive(Serialize)]
struct JsonRaw<'a> {
    name: &'a str,
    summary: Summary,
}

/// Writes every row's figures as pretty JSON to `path`, creating its directory if needed.
pub fn write_json(rows: &[Row], path: &Path, quick: bool) -> Result<()> {
    let document = Document {
        quick,
        chronik_version: env!("CARGO_PKG_VERSION"),
        machine: Machine { cores: std::thread::available_parallelism().map_or(1, |n| n.get()) },
        rows: rows
            .iter()
            .map(|row| JsonRow {
                backend: row.backend,
                group: row.group,
                name: &row.name,
                concurrency: row.concurrency,
                chronik: row.chronik.summary(),
                raw: row.raw.as_ref().map(|(name, raw)| JsonRaw { name, summary: raw.summary() }),
                ratio: row.ratio().filter(|r| r.is_finite()),
                rss: row.rss,
                elixir_us_per_op: row.elixir_us,
                target: row.target,
                met: row.met(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&document)
        .map_err(|e| format!("could not serialize the figures for {}: {e}", path.display()))?;
    text.push('\n');
    write_file(path, &text)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("could not create the directory {} for {}: {e}", parent.display(), path.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(())
}

const CHART_SIZE: (u32, u32) = (1100, 600);
/// Width of the plot; the legend takes the rest.
const PLOT_WIDTH: u32 = 640;

/// Tableau 10: distinct, and dark enough on white.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The same workload at several concurrencies: one chronik line and one raw line on the chart.
#[derive(Debug)]
struct Series {
    backend: Backend,
    group: Group,
    /// The rows' name without their leading count, e.g. "writers x 100-event appends".
    shape: String,
    /// What the baseline is, for the legend.
    raw_label: String,
    /// (concurrency, chronik events/s, raw events/s, ratio), by concurrency.
    points: Vec<(f64, f64, f64, f64)>,
}

/// A row's name without its first token if that is the concurrency count ("10 writers x
/// 100-event appends" gives "writers x 100-event appends"); other names stay whole.
fn shape(name: &str) -> String {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) if first.parse::<f64>().is_ok() => rest.trim_start().to_string(),
        _ => name.to_string(),
    }
}

/// The rows with a concurrency and a raw baseline, grouped by (backend, group, name without its
/// count), in the order they first appear.
fn series(rows: &[Row]) -> Vec<Series> {
    let mut all: Vec<(Series, Vec<&str>)> = Vec::new();
    for row in rows {
        let (Some(concurrency), Some((raw_name, raw))) = (row.concurrency, &row.raw) else {
            continue;
        };
        let (chronik_rate, raw_rate) = (row.chronik.rate(), raw.rate());
        let drawable = |rate: f64| rate.is_finite() && rate > 0.0;
        if concurrency == 0 || !drawable(chronik_rate) || !drawable(raw_rate) {
            continue;
        }
        let shape = shape(&row.name);
        let same = |s: &Series| s.backend == row.backend && s.group == row.group && s.shape == shape;
        let index = match all.iter().position(|(s, _)| same(s)) {
            Some(index) => index,
            None => {
                let s = Series {
                    backend: row.backend,
                    group: row.group,
                    shape,
                    raw_label: String::new(),
                    points: Vec::new(),
                };
                all.push((s, Vec::new()));
                all.len() - 1
            }
        };
        let (s, raw_names) = &mut all[index];
        s.points.push((concurrency as f64, chronik_rate, raw_rate, chronik_rate / raw_rate));
        raw_names.push(raw_name);
    }
    all.into_iter()
        .map(|(mut s, raw_names)| {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            // The baseline's own name if it is the same at every concurrency (once its count is
            // stripped too), else just what it is.
            let shapes: BTreeSet<String> = raw_names.iter().map(|name| shape(name)).collect();
            s.raw_label = match (raw_names.as_slice(), shapes.len()) {
                ([only], _) => only.to_string(),
                (_, 1) => shapes.into_iter().next().unwrap_or_default(),
                _ => format!("raw {}", s.backend.name()),
            };
            s
        })
        .collect()
}

/// "chronik vs raw PostgreSQL and raw SQLite: …", naming the backends on the chart.
fn chart_title(series: &[Series]) -> String {
    let backends: Vec<String> = BACKENDS
        .iter()
        .filter(|&&b| series.iter().any(|s| s.backend == b))
        .map(|b| format!("raw {}", b.name()))
        .collect();
    let against = if backends.is_empty() { "raw".to_string() } else { backends.join(" and ") };
    format!("chronik vs {against}: throughput by concurrency")
}

/// Draws chronik's and the raw baselines' events/s by concurrency as an SVG chart at `path`.
/// Series of both backends share it: SQLite's points are triangles, PostgreSQL's circles.
pub fn write_chart(rows: &[Row], path: &Path) -> Result<()> {
    let series = series(rows);
    let svg = draw_chart(&series).map_err(|e| format!("could not draw the chart {}: {e}", path.display()))?;
    write_file(path, &svg)
}

fn draw_chart(series: &[Series]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&chart_title(series), ("sans-serif", 24).into_font().color(&BLACK))?;
        if series.is_empty() {
            root.draw(&Text::new(
                "no rows with a concurrency and a raw baseline to draw",
                (CHART_SIZE.0 as i32 / 2, CHART_SIZE.1 as i32 / 3),
                ("sans-serif", 18).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        } else {
            draw_plot(&root, series)?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn draw_plot<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, series: &[Series]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (plot, legend) = root.split_horizontally(PLOT_WIDTH);

    let concurrencies: BTreeSet<u64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0 as u64)).collect();
    let x_ticks: Vec<f64> = concurrencies.iter().map(|&c| c as f64).collect();
    let (x_min, x_max) = (x_ticks[0], x_ticks[x_ticks.len() - 1]);
    let rates = series.iter().flat_map(|s| s.points.iter().flat_map(|p| [p.1, p.2]));
    let (y_min, y_max) = rates.fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let (y_lo, y_hi) = (y_min / 1.8, y_max * 1.8);

    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .margin_right(8)
        .x_label_area_size(50)
        .y_label_area_size(78)
        .build_cartesian_2d(
            (x_min / 1.6..x_max * 1.6).log_scale().with_key_points(x_ticks),
            (y_lo..y_hi).log_scale().with_key_points(y_ticks(y_lo, y_hi)),
        )?;
    chart
        .configure_mesh()
        .bold_line_style(RGBColor(225, 225, 225))
        .axis_style(RGBColor(90, 90, 90))
        .x_desc("concurrency (writers / readers / subscriptions), log scale")
        .y_desc("events/s, log scale")
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| si(*y))
        .draw()?;

    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let faded = color.mix(0.6);
        let chronik: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        let raw: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.2)).collect();
        chart.draw_series(DashedLineSeries::new(raw.clone(), 7, 5, faded.stroke_width(2)))?;
        chart.draw_series(LineSeries::new(chronik.clone(), color.stroke_width(3)))?;
        match s.backend {
            Backend::Postgres => {
                chart.draw_series(raw.iter().map(|&p| Circle::new(p, 4, faded.stroke_width(2))))?;
                chart.draw_series(chronik.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
            }
            Backend::Sqlite => {
                chart.draw_series(raw.iter().map(|&p| TriangleMarker::new(p, 6, faded.stroke_width(2))))?;
                chart.draw_series(chronik.iter().map(|&p| TriangleMarker::new(p, 7, color.filled())))?;
            }
        }
    }
    // chronik's share of the baseline next to each of its points, on the side away from the
    // baseline's line, over all the lines; where labels would overlap, only the first is drawn.
    let mut placed: Vec<(i32, i32)> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        for p in &s.points {
            let offset = if p.3 < 1.0 { (7, 5) } else { (7, -18) };
            let (x, y) = chart.backend_coord(&(p.0, p.1));
            let at = (x + offset.0, y + offset.1);
            if placed.iter().any(|q| (q.0 - at.0).abs() < 40 && (q.1 - at.1).abs() < 14) {
                continue;
            }
            placed.push(at);
            chart.draw_series(std::iter::once(
                EmptyElement::at((p.0, p.1))
                    + Text::new(times(p.3), offset, ("sans-serif", 12).into_font().color(&color)),
            ))?;
        }
    }

    draw_legend(&legend, series)?;
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, series: &[Series]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let label = |size: u32, color: RGBColor| {
        ("sans-serif", size).into_font().color(&color).pos(Pos::new(HPos::Left, VPos::Center))
    };
    let black = RGBColor(30, 30, 30);
    let grey = RGBColor(95, 95, 95);
    let (x0, x1, text_x) = (4, 40, 48);
    let mut y = 40;
    area.draw(&Text::new("solid: chronik, dashed: its raw baseline, same database", (x0, y), label(13, grey)))?;
    y += 18;
    area.draw(&Text::new("point labels: chronik events/s over raw events/s", (x0, y), label(13, grey)))?;
    y += 30;
    // Keep the legend inside the picture however many series there are.
    let available = CHART_SIZE.1 as i32 - 60 - y;
    let step = (available / series.len().max(1) as i32).clamp(24, 50);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let faded = color.mix(0.6);
        area.draw(&PathElement::new(vec![(x0, y), (x1, y)], color.stroke_width(3)))?;
        let mid = (x0 + x1) / 2;
        match s.backend {
            Backend::Postgres => area.draw(&Circle::new((mid, y), 5, color.filled()))?,
            Backend::Sqlite => area.draw(&TriangleMarker::new((mid, y), 7, color.filled()))?,
        }
        let name = format!("{} {}: N {}", s.backend.name(), group_name(s.group), s.shape);
        area.draw(&Text::new(clip(&name, 56), (text_x, y), label(14, black)))?;
        if step >= 36 {
            let y = y + 17;
            area.draw(&DashedPathElement::new(vec![(x0, y), (x1, y)], 7, 5, faded.stroke_width(2)))?;
            match s.backend {
                Backend::Postgres => area.draw(&Circle::new((mid, y), 4, faded.stroke_width(2)))?,
                Backend::Sqlite => area.draw(&TriangleMarker::new((mid, y), 6, faded.stroke_width(2)))?,
            }
            area.draw(&Text::new(clip(&format!("raw: {}", s.raw_label), 62), (text_x, y), label(12, grey)))?;
        }
        y += step;
    }
    Ok(())
}

fn group_name(group: Group) -> &'static str {
    match group {
        Group::Append => "append",
        Group::Read => "read",
        Group::Elixir => "elixir",
        Group::Subscriptions => "subscriptions",
        Group::Retention => "retention",
        Group::Categories => "categories",
        Group::Grpc => "grpc",
        Group::Memory => "memory",
    }
}

/// At most `max` characters, with an ellipsis if cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// Ticks at 1, 2 and 5 times the powers of ten in `lo..=hi` (only the powers over a wide range).
fn y_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let steps: &[f64] = if hi / lo > 1e4 { &[1.0] } else { &[1.0, 2.0, 5.0] };
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        ticks.extend(steps.iter().map(|s| s * decade).filter(|t| (lo..=hi).contains(t)));
        decade *= 10.0;
    }
    ticks
}

/// `1.5k`, `20k`, `1.2M`.
fn si(x: f64) -> String {
    let (value, suffix) = match x.abs() {
        v if v >= 1e9 => (x / 1e9, "G"),
        v if v >= 1e6 => (x / 1e6, "M"),
        v if v >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let text = format!("{value:.1}");
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::measure::Measured;

    /// `events` events in `seconds`, in operations of `op_ms` each.
    fn measured(events: u64, seconds: f64, op_ms: f64, ops: usize) -> Measured {
        Measured {
            events,
            elapsed: Duration::from_secs_f64(seconds),
            latencies: (0..ops).map(|i| Duration::from_secs_f64(op_ms * (1.0 + i as f64 / ops as f64) / 1e3)).collect(),
            cpu: None,
        }
    }

    fn rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for (n, chronik_s, raw_s) in [(1, 2.0, 1.1), (10, 0.6, 0.3), (100, 0.35, 0.1)] {
            rows.push(
                Row::compared(
                    Group::Append,
                    format!("{n} writers x 100-event appends"),
                    measured(100_000, chronik_s, 2.0, 1000),
                    &format!("{n} conns x 100-row INSERT"),
                    measured(100_000, raw_s, 1.0, 1000),
                )
                .concurrency(n)
                .target(Target::RatioAtLeast(0.5)),
            );
            rows.push(
                Row::compared(
                    Group::Append,
                    format!("{n} writers x 1-event appends"),
                    measured(5_000, chronik_s * 3.0, 2.0, 5000),
                    "1-row INSERT",
                    measured(5_000, raw_s * 2.0, 1.0, 5000),
                )
                .concurrency(n),
            );
            rows.push(
                Row::compared(
                    Group::Read,
                    format!("{n} readers x 1000-event stream reads"),
                    measured(1_000_000, chronik_s, 5.0, 1000),
                    "SELECT by stream",
                    measured(1_000_000, raw_s * 1.5, 3.0, 1000),
                )
                .concurrency(n)
                .target(Target::RatioAtLeast(0.8)),
            );
        }
        rows.push(
            Row::compared(
                Group::Elixir,
                "append 1 event to a new stream",
                measured(1000, 1.6, 1.6, 1000),
                "1-row INSERT",
                measured(1000, 0.4, 0.4, 1000),
            )
            .elixir(20289.0),
        );
        rows.push(
            Row::alone(Group::Elixir, "subscribe and receive 100 events", measured(100, 0.5, 50.0, 10)).elixir(11.0),
        );
        rows.push(
            Row::alone(
                Group::Subscriptions,
                "1 subscription catching up 10k events",
                measured(10_000, 0.2, 0.02, 10_000),
            )
            .target(Target::P99BelowMs(5.0)),
        );
        rows.push(Row::memory(
            "100k events through 10 subscriptions",
            Rss { before_mib: 40.25, peak_mib: 96.5, after_mib: 61.0 },
            Target::RssGrowthBelowMib(128.0),
        ));
        rows.push(Row::memory(
            "1M-event catch-up",
            Rss { before_mib: 60.0, peak_mib: 420.0, after_mib: 80.0 },
            Target::RssBelowMib(256.0),
        ));
        for (n, chronik_s) in [(1, 5.0), (100, 0.5)] {
            rows.push(
                Row::compared(
                    Group::Append,
                    format!("{n} writers x 100-event appends"),
                    measured(100_000, chronik_s, 2.0, 1000),
                    "multi-row INSERT, 1 tx per append",
                    measured(100_000, 2.0, 1.0, 1000),
                )
                .concurrency(n)
                .target(Target::RatioAtLeast(0.5))
                .on(Backend::Sqlite),
            );
        }
        rows
    }

    #[test]
    fn groups_rows_into_series_by_name_without_the_count() {
        assert_eq!(shape("10 writers x 100-event appends"), "writers x 100-event appends");
        assert_eq!(shape("append 1 event"), "append 1 event");
        let series = series(&rows());
        let names: Vec<(Group, &str, usize)> =
            series.iter().map(|s| (s.group, s.shape.as_str(), s.points.len())).collect();
        assert_eq!(
            names,
            [
                (Group::Append, "writers x 100-event appends", 3),
                (Group::Append, "writers x 1-event appends", 3),
                (Group::Read, "readers x 1000-event stream reads", 3),
                (Group::Append, "writers x 100-event appends", 2),
            ]
        );
        assert_eq!(series[0].raw_label, "conns x 100-row INSERT");
        assert_eq!(series[1].raw_label, "1-row INSERT");
        // The same workload on the other backend is a series of its own.
        assert_eq!((series[0].backend, series[3].backend), (Backend::Postgres, Backend::Sqlite));
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(si(2500.0), "2.5k");
        assert_eq!(si(1_000_000.0), "1M");
        assert_eq!(y_ticks(300.0, 3000.0), [500.0, 1000.0, 2000.0]);
        let summary = targets_summary(&rows());
        assert!(summary.starts_with("targets: "), "{summary}");
        assert!(summary.contains("MISSED: ") && summary.contains("PostgreSQL: 1M-event catch-up"), "{summary}");
        assert!(summary.contains("SQLite: 1 writers x 100-event appends"), "{summary}");
    }

    #[test]
    fn writes_json_and_chart() {
        let dir = std::env::temp_dir().join(format!("chronik-bench-report-{}", std::process::id()));
        let rows = rows();
        print(&rows);
        let json = dir.join("nested/bench.json");
        write_json(&rows, &json, true).unwrap();
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(value["quick"], true);
        assert!(value["machine"]["cores"].as_u64().unwrap() >= 1);
        assert_eq!(value["rows"].as_array().unwrap().len(), rows.len());
        assert_eq!(value["rows"][0]["group"], "append");
        assert_eq!(value["rows"][0]["backend"], "postgres");
        assert_eq!(value["rows"][rows.len() - 1]["backend"], "sqlite");
        assert_eq!(value["rows"][0]["raw"]["name"], "1 conns x 100-row INSERT");
        assert_eq!(value["rows"][0]["target"]["kind"], "ratio_at_least");
        assert!(value["rows"][0]["ratio"].is_f64());
        let memory = rows.iter().rposition(|row| row.group == Group::Memory).unwrap();
        assert!(value["rows"][memory]["raw"].is_null());
        assert!(value["rows"][memory]["rss"]["peak_mib"].is_f64());

        let chart = dir.join("bench.svg");
        write_chart(&rows, &chart).unwrap();
        let svg = std::fs::read_to_string(&chart).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("writers x 100-event appends"), "{svg}");
        assert!(svg.contains("chronik vs raw PostgreSQL and raw SQLite") && svg.contains("SQLite append: N"));
        write_chart(&[], &dir.join("empty.svg")).unwrap();

        // Where a file cannot go, the error names it.
        let blocked = json.join("bench.json");
        let error = write_json(&rows, &blocked, false).unwrap_err().to_string();
        assert!(error.contains(&blocked.display().to_string()), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
