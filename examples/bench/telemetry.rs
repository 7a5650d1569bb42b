//! What telemetry costs (PostgreSQL): the same appends and the same catch-up measured three
//! ways in alternating rounds of one run: without a metrics recorder and with spans off (the
//! baseline); with chronik's metrics recorded into a Prometheus recorder; and with those
//! metrics and chronik's spans enabled (`chronik=info`, handled by the suite's `tracing`
//! subscriber, a formatting one). Two stores on one schema: one started before the recorder
//! was installed (its metric handles are no-ops) and one after; the spans are switched by
//! reloading the subscriber's filter before each side. It runs last: the recorder, once
//! installed, stays for the rest of the process.

use chronik::{Config, EventData, EventStore, ExpectedVersion};
use indicatif::ProgressBar;

use crate::append::stream_appends;
use crate::measure::{Group, Measured, Row, Target};
use crate::payload::Raw;
use crate::subscribe::catch_up;
use crate::{Bench, Plan, Result, spans};

pub const STEPS: usize = 3;

/// Appends per writer over all rounds (1 writer; 100 writers): enough for seconds per side,
/// since the differences sought are a few percent.
const APPENDS: (usize, usize) = (6_000, 300);

/// Rounds per workload; each runs the three sides, in an order that moves by one each round.
const ROUNDS: usize = 6;

/// Events the catch-up rounds read (each round reads them all), written in 100-event appends.
const CATCH_UP_EVENTS: u64 = 100_000;

/// How a side runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Telemetry {
    Off,
    Metrics,
    MetricsAndSpans,
}

impl Telemetry {
    const ALL: [Telemetry; 3] = [Telemetry::Off, Telemetry::Metrics, Telemetry::MetricsAndSpans];

    fn tag(self) -> &'static str {
        match self {
            Telemetry::Off => "off",
            Telemetry::Metrics => "metrics",
            Telemetry::MetricsAndSpans => "spans",
        }
    }
}

/// One side's figures: 1 writer, 100 writers, catch-up.
#[derive(Default)]
struct Side {
    one: Measured,
    hundred: Measured,
    catch_up: Measured,
}

pub async fn run(plan: Plan, progress: &ProgressBar, config: &Config, raw: Raw) -> Result<Vec<Row>> {
    let plain =
        Bench::new(EventStore::start(config.clone()).await?, config.clone(), raw.clone(), plan, progress.clone());
    let prometheus = chronik::server::http::install_prometheus()?;
    let recorded = Bench::new(EventStore::start(config.clone()).await?, config.clone(), raw, plan, progress.clone());
    let scale = |n: usize| if plan.quick { (n / 5).max(ROUNDS) } else { n };
    let (one, hundred) = (scale(APPENDS.0) / ROUNDS, scale(APPENDS.1) / ROUNDS);
    let mut sides: [Side; 3] = Default::default();
    let order = |round: usize| (0..3).map(move |i| Telemetry::ALL[(round + i) % 3]);
    let bench_of = |t: Telemetry| if t == Telemetry::Off { &plain } else { &recorded };
    plain.step("telemetry: appends, off / metrics / metrics + spans");
    for round in 0..ROUNDS {
        for telemetry in order(round) {
            let bench = bench_of(telemetry);
            spans(telemetry == Telemetry::MetricsAndSpans)?;
            let side = &mut sides[telemetry as usize];
            // Streams of their own (the two stores' stream counters would pick the same names).
            let single = vec![format!("telemetry-{}-{round}", telemetry.tag())];
            side.one.add(stream_appends(bench, single, 1, one).run().await?);
            let names = (0..100).map(|i| format!("telemetry-{}-{round}-{i}", telemetry.tag())).collect();
            side.hundred.add(stream_appends(bench, names, 1, hundred).run().await?);
        }
    }
    spans(false)?;
    plain.step("telemetry: catch-up, off / metrics / metrics + spans");
    let total = if plan.quick { CATCH_UP_EVENTS / 5 } else { CATCH_UP_EVENTS };
    for n in 0..total / 100 {
        let events: Vec<_> = (0..100)
            .map(|i| EventData::json("Filled", &serde_json::json!({ "n": n * 100 + i })))
            .collect::<chronik::Result<_>>()?;
        plain.store.append_to_stream(&format!("telemetry-fill-{}", n % 50), ExpectedVersion::Any, events).await?;
    }
    let head = plain.store.read_all_backward(None, 1).await?.first().map_or(0, |e| e.global_position);
    for round in 0..ROUNDS {
        for telemetry in order(round) {
            spans(telemetry == Telemetry::MetricsAndSpans)?;
            let name = format!("telemetry-{}-{round}", telemetry.tag());
            sides[telemetry as usize].catch_up.add(catch_up(bench_of(telemetry), &[name], head).await?);
        }
    }
    spans(false)?;
    plain.step("telemetry: the recorder's figures");
    let rendered = prometheus.render();
    plain.say(&format!(
        "telemetry: the Prometheus recorder renders {} lines; {head} events caught up per side and round",
        rendered.lines().count()
    ));
    for bench in [plain, recorded] {
        bench.store.shutdown().await?;
    }
    let [off, metrics, both] = sides;
    let baseline = "the same, no recorder, spans off";
    let at_least = Target::RatioAtLeast(0.95);
    let row = |group, name: &str, with: Measured, without: Measured| {
        Row::compared(group, name, with, baseline, without).target(at_least)
    };
    Ok(vec![
        row(Group::Append, "1 writer x 1-event appends, metrics", metrics.one, off.one.clone()),
        row(Group::Append, "1 writer x 1-event appends, metrics + spans", both.one, off.one),
        row(Group::Append, "100 writers x 1-event appends, metrics", metrics.hundred, off.hundred.clone()),
        row(Group::Append, "100 writers x 1-event appends, metrics + spans", both.hundred, off.hundred),
        row(Group::Subscriptions, "catch-up, 1 subscription, metrics", metrics.catch_up, off.catch_up.clone()),
        row(Group::Subscriptions, "catch-up, 1 subscription, metrics + spans", both.catch_up, off.catch_up),
    ])
}
