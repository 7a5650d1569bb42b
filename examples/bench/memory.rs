//! Memory: the resident set of this process (the store and the benchmark together) around two
//! workloads, sampled every 50 ms for its peak. Before each, the heap that earlier workloads
//! freed is handed back to the system (glibc's `malloc_trim`), so that "before" is what the
//! process holds rather than what its allocator kept from, say, ten concurrent catch-ups, and
//! the growth shows what the workload itself needs.
//!
//! - **idle subscriptions**: 1,000 named subscriptions (200 with `--quick`), one per stream,
//!   started and live with nothing to deliver; "after" is once all of them are idle.
//! - **lagging subscriber**: a named `$all` subscription from `Current` whose subscriber takes
//!   its first deliveries and never acks, while writers append 1,000,000 events (100,000 with
//!   `--quick`) behind it. Its queue is bounded by `max_size`, so memory must stay flat however
//!   far it lags; "after" is once the appends are done, the subscription still lagging.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chronik::{ALL, StartFrom, SubscriptionMessage, SubscriptionOptions};
use tokio::task::JoinHandle;

use crate::measure::{Row, Rss, Target, rss_mib};
use crate::{Bench, Result};

pub const STEPS: usize = 2;

/// How often the peak is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Longest wait for any one subscription message.
const STUCK: Duration = Duration::from_secs(60);

pub async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let idle = if bench.quick { 200 } else { 1_000 };
    let lag: u64 = if bench.quick { 100_000 } else { 1_000_000 };
    let mut rows = Vec::new();

    let name = format!("{} idle named subscriptions", thousands(idle as u64));
    bench.step(&name);
    rows.push(Row::memory(name, idle_subscriptions(bench, idle).await?, Target::RssBelowMib(100.0)));

    let name = format!("subscriber lagging {} events behind", thousands(lag));
    bench.step(&name);
    rows.push(Row::memory(name, lagging(bench, lag).await?, Target::RssGrowthBelowMib(50.0)));
    Ok(rows)
}

/// `n` with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Samples the resident set in the background until [`finish`](Self::finish).
struct Sampler {
    before: f64,
    stop: Arc<AtomicBool>,
    task: JoinHandle<f64>,
}

impl Sampler {
    /// Starts sampling, after handing the heap that earlier workloads freed back to the system,
    /// so that "before" is what the process holds, not what its allocator kept.
    fn start() -> Sampler {
        trim_heap();
        let before = rss_mib();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut peak = before;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib());
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            peak
        });
        Sampler { before, stop, task }
    }

    /// Before, peak and now.
    async fn finish(self) -> Result<Rss> {
        self.stop.store(true, Ordering::Relaxed);
        let after = rss_mib();
        let peak = self.task.await?.max(after);
        Ok(Rss { before_mib: self.before, peak_mib: peak, after_mib: after })
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    unsafe extern "C" {
        /// glibc: returns free heap memory to the system.
        safe fn malloc_trim(pad: usize) -> i32;
    }
    malloc_trim(0);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// `count` named subscriptions, one per (not yet written) stream, each live and idle.
async fn idle_subscriptions(bench: &Bench, count: usize) -> Result<Rss> {
    let sampler = Sampler::start();
    let started = Instant::now();
    let mut subs = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = bench.fresh_stream().1;
        subs.push(bench.store.subscribe_to_stream(&stream, "bench-idle", SubscriptionOptions::default()).await?);
    }
    for sub in &mut subs {
        loop {
            match tokio::time::timeout(STUCK, sub.recv()).await {
                Ok(Some(SubscriptionMessage::CaughtUp)) => break,
                Ok(Some(SubscriptionMessage::Dropped(why))) => return Err(format!("idle subscription: {why}").into()),
                Ok(Some(_)) => {}
                Ok(None) => return Err("an idle subscription ended".into()),
                Err(_) => return Err("an idle subscription did not catch up".into()),
            }
        }
    }
    let live = started.elapsed();
    // Idle for a moment, as subscriptions mostly are.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = sampler.finish().await?;
    futures::future::try_join_all(subs.into_iter().map(|sub| sub.unsubscribe())).await?;
    bench.say(&format!(
        "memory: {count} idle subscriptions live in {:.1} s: RSS {:.1} -> {:.1} MiB ({:+.1} KiB each), \
         {:.1} MiB once unsubscribed",
        live.as_secs_f64(),
        rss.before_mib,
        rss.after_mib,
        (rss.after_mib - rss.before_mib) * 1024.0 / count as f64,
        rss_mib()
    ));
    Ok(rss)
}

/// A live `$all` subscription that never acks while `lag` events are appended behind it.
async fn lagging(bench: &Bench, lag: u64) -> Result<Rss> {
    let name = "bench-lagging";
    let options =
        SubscriptionOptions::default().start_from(StartFrom::Current).message_timeout(Duration::from_secs(24 * 3_600));
    let (buffer_size, max_size) = (options.buffer_size, options.max_size);
    let mut sub = bench.store.subscribe_to_all_streams(name, options).await?;
    loop {
        match tokio::time::timeout(STUCK, sub.recv()).await {
            Ok(Some(SubscriptionMessage::CaughtUp)) => break,
            Ok(Some(SubscriptionMessage::Dropped(why))) => return Err(format!("lagging subscription: {why}").into()),
            Ok(Some(_)) => {}
            Ok(None) => return Err("the lagging subscription ended".into()),
            Err(_) => return Err("the lagging subscription did not catch up".into()),
        }
    }
    let sampler = Sampler::start();
    let started = Instant::now();
    // The subscriber takes what it is given (and holds it, unacked) while the writers append.
    let mut received = 0_u64;
    let mut held = Vec::new();
    let appending = crate::payload::append_backlog(bench, lag);
    tokio::pin!(appending);
    let appended = loop {
        tokio::select! {
            appended = &mut appending => break appended?,
            message = sub.recv() => match message {
                Some(SubscriptionMessage::Events(batch)) => {
                    received += batch.len() as u64;
                    held.push(batch);
                }
                Some(SubscriptionMessage::Dropped(why)) => return Err(format!("lagging subscription: {why}").into()),
                Some(_) => {}
                None => return Err("the lagging subscription ended".into()),
            },
        }
    };
    let elapsed = started.elapsed();
    // Let the subscription settle on what it was sent last.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = sampler.finish().await?;
    let status = bench.store.subscription_status(ALL, name).await?;
    let head = bench.store.stream_info(ALL).await?.stream_version;
    bench.say(&format!(
        "memory: {appended} events appended in {:.1} s behind a subscriber that never acks: it received {received} \
         (buffer_size {buffer_size}); subscription {:?}, queued {} (peak {}, max_size {max_size}), in flight {}, \
         last received {} of head {head} ({} behind)",
        elapsed.as_secs_f64(),
        status.phase,
        status.queued,
        status.peak_queued,
        status.in_flight,
        status.last_received,
        head.saturating_sub(status.last_received),
    ));
    if status.queued > max_size || status.peak_queued > max_size {
        return Err(format!(
            "lagging subscription queued {} (peak {}) over max_size {max_size}",
            status.queued, status.peak_queued
        )
        .into());
    }
    drop(held);
    sub.unsubscribe().await?;
    Ok(rss)
}
