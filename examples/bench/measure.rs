//! What a workload measured, and the rows of the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;

use crate::{BoxError, Result};

/// One timed call of task `task`, number `i`: the events it moved.
pub type Op = Arc<dyn Fn(usize, usize) -> BoxFuture<'static, Result<u64>> + Send + Sync>;

/// `tasks` concurrent tasks, each making `per_task` timed calls of `op`.
pub struct Workers {
    pub tasks: usize,
    pub per_task: usize,
    pub op: Op,
}

impl Workers {
    /// Runs them all; every call's duration is one latency.
    pub async fn run(&self) -> Result<Measured> {
        let busy = machine_busy();
        let started = Instant::now();
        let handles: Vec<_> = (0..self.tasks)
            .map(|task| {
                let (op, per_task) = (Arc::clone(&self.op), self.per_task);
                tokio::spawn(async move {
                    let (mut events, mut latencies) = (0, Vec::with_capacity(per_task));
                    for i in 0..per_task {
                        let call = Instant::now();
                        events += op(task, i).await?;
                        latencies.push(call.elapsed());
                    }
                    Ok::<_, BoxError>((events, latencies))
                })
            })
            .collect();
        let mut measured = Measured::default();
        for handle in handles {
            let (events, latencies) = handle.await??;
            measured.events += events;
            measured.latencies.extend(latencies);
        }
        measured.elapsed = started.elapsed();
        measured.cpu = busy.zip(machine_busy()).map(|(before, after)| after.saturating_sub(before));
        Ok(measured)
    }
}

/// CPU time the whole machine has spent busy since boot (every core, every process: chronik,
/// the clients, the database), from `/proc/stat`; `None` where there is none. The kernel
/// counts in units of 1/100 s.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = cpu.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
    // user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|&(i, _)| i != 3 && i != 4).map(|(_, t)| t).sum();
    Some(Duration::from_millis(busy * 10))
}

/// Timed work: how many events it moved, how long it took, and how long each operation took
/// (an append call, a read, a delivery, or one iteration of an Elixir-shaped workload).
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Events appended, read or delivered.
    pub events: u64,
    /// Wall-clock time of the whole workload.
    pub elapsed: Duration,
    /// Duration of every operation.
    pub latencies: Vec<Duration>,
    /// CPU time the machine spent meanwhile (see [`Workers::run`]), where it was measured.
    pub cpu: Option<Duration>,
}

impl Measured {
    /// Adds another round of the same workload.
    pub fn add(&mut self, other: Measured) {
        // An empty accumulator takes the other's CPU time; one measured part without it
        // leaves the whole unmeasured.
        let empty = self.events == 0 && self.elapsed.is_zero();
        self.cpu = if empty { other.cpu } else { self.cpu.zip(other.cpu).map(|(a, b)| a + b) };
        self.events += other.events;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    /// The machine's CPU time per event, in microseconds, where it was measured.
    pub fn cpu_us_per_event(&self) -> Option<f64> {
        self.cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / self.events.max(1) as f64)
    }

    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Nearest-rank percentile of the operation latencies, in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1_000.0
    }

    /// Mean operation time in microseconds (the Elixir benchmark's µs/op).
    pub fn mean_us(&self) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.iter().map(Duration::as_secs_f64).sum::<f64>() / self.latencies.len() as f64 * 1e6
    }

    /// The figures the report shows.
    pub fn summary(&self) -> Summary {
        Summary {
            events: self.events,
            seconds: self.elapsed.as_secs_f64(),
            events_per_s: self.rate(),
            operations: self.latencies.len(),
            p50_ms: self.percentile_ms(0.50),
            p99_ms: self.percentile_ms(0.99),
            mean_us_per_op: self.mean_us(),
            cpu_us_per_event: self.cpu_us_per_event(),
        }
    }
}

/// The figures of one side of a row.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub operations: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_us_per_op: f64,
    /// The whole machine's CPU time per event (every process), where measured.
    pub cpu_us_per_event: Option<f64>,
}

/// The database a row ran on: chronik's store and its raw baseline both live there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

/// The report's sections (each shown once per backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Append,
    Read,
    Subscriptions,
    Memory,
    /// The Elixir EventStore's published workload shapes, in µs/op.
    Elixir,
    /// Stream metadata and scavenging.
    Retention,
    /// Category and event-type streams, and filtered `$all`.
    Categories,
    /// `chronik serve`, through the KurrentDB client.
    Grpc,
}

/// What a row is held to.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// chronik's events/s at least this many times the raw baseline's.
    RatioAtLeast(f64),
    /// At least this many events/s.
    RateAtLeast(f64),
    /// p99 operation latency under this many milliseconds.
    P99BelowMs(f64),
    /// Resident memory under this many MiB.
    RssBelowMib(f64),
    /// Resident memory grows by less than this many MiB over the workload.
    RssGrowthBelowMib(f64),
}

/// Resident memory around a workload.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rss {
    /// Before the workload started.
    pub before_mib: f64,
    /// The highest sample during it.
    pub peak_mib: f64,
    /// At its end.
    pub after_mib: f64,
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// Set for every row of a part by `main` (PostgreSQL until then).
    pub backend: Backend,
    pub group: Group,
    /// What ran, e.g. "10 writers x 100-event appends".
    pub name: String,
    /// Writers, readers or subscriptions, for the chart (`None`: not on the chart).
    pub concurrency: Option<usize>,
    /// chronik's figures (empty for a memory row).
    pub chronik: Measured,
    /// The raw baseline of the same shape on the same database in the same run, and what it is.
    pub raw: Option<(String, Measured)>,
    /// Memory, for the memory rows.
    pub rss: Option<Rss>,
    /// The published Elixir EventStore figure of the same shape, in µs/op.
    pub elixir_us: Option<f64>,
    pub target: Option<Target>,
}

impl Row {
    /// A throughput row with a raw baseline.
    pub fn compared(group: Group, name: impl Into<String>, chronik: Measured, raw_name: &str, raw: Measured) -> Row {
        Row { raw: Some((raw_name.to_string(), raw)), ..Row::alone(group, name, chronik) }
    }

    /// A row without a baseline (PostgreSQL unless [`Row::on`] says otherwise).
    pub fn alone(group: Group, name: impl Into<String>, chronik: Measured) -> Row {
        Row {
            backend: Backend::Postgres,
            group,
            name: name.into(),
            concurrency: None,
            chronik,
            raw: None,
            rss: None,
            elixir_us: None,
            target: None,
        }
    }

    /// A memory row.
    pub fn memory(name: impl Into<String>, rss: Rss, target: Target) -> Row {
        Row { rss: Some(rss), target: Some(target), ..Row::alone(Group::Memory, name, Measured::default()) }
    }

    /// The backend the row ran on.
    pub fn on(mut self, backend: Backend) -> Row {
        self.backend = backend;
        self
    }

    pub fn concurrency(mut self, n: usize) -> Row {
        self.concurrency = Some(n);
        self
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    pub fn elixir(mut self, us_per_op: f64) -> Row {
        self.elixir_us = Some(us_per_op);
        self
    }

    /// chronik's events/s over the baseline's.
    pub fn ratio(&self) -> Option<f64> {
        self.raw.as_ref().map(|(_, raw)| self.chronik.rate() / raw.rate())
    }

    /// Whether the row meets its target, if it has one.
    pub fn met(&self) -> Option<bool> {
        Some(match self.target? {
            Target::RatioAtLeast(x) => self.ratio()? >= x,
            Target::RateAtLeast(x) => self.chronik.rate() >= x,
            Target::P99BelowMs(x) => self.chronik.percentile_ms(0.99) < x,
            Target::RssBelowMib(x) => self.rss?.peak_mib < x,
            Target::RssGrowthBelowMib(x) => self.rss?.peak_mib - self.rss?.before_mib < x,
        })
    }
}

/// This process's resident set size in MiB (Linux; 0 elsewhere).
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
