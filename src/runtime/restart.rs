//! Restart policy shared by every supervising actor: exponential backoff within a budget, and
//! which supervision events mean a child stopped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ractor::{ActorCell, SupervisionEvent};

/// Most restarts of one actor within `RESTART_WINDOW` before its supervisor gives up.
pub const RESTART_BUDGET: usize = 20;
/// The window of the restart budget.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Restarts of one actor: exponential backoff (50 ms doubling up to 5 s) within a budget of
/// `RESTART_BUDGET` restarts per `RESTART_WINDOW`.
#[derive(Debug, Default)]
pub struct RestartBudget {
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    /// Records a failure: the wait before the next restart, or `None` past the budget.
    pub fn next_backoff(&mut self) -> Option<Duration> {
        let now = Instant::now();
        self.restarts.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        self.restarts.push_back(now);
        if self.restarts.len() > RESTART_BUDGET {
            return None;
        }
        Some(backoff(self.restarts.len() - 1))
    }
}

/// The wait before attempt `n + 1` after `n` failures in a row: 50 ms doubling up to 5 s.
pub fn backoff(failures: usize) -> Duration {
    let exponent = u32::try_from(failures).unwrap_or(u32::MAX).min(16);
    FIRST_BACKOFF.saturating_mul(2_u32.saturating_pow(exponent)).min(MAX_BACKOFF)
}

/// The child a supervision event says has stopped (failed or terminated), and why; `None` for
/// events that are not a stop.
pub fn stopped_child(event: SupervisionEvent) -> Option<(ActorCell, String)> {
    match event {
        SupervisionEvent::ActorFailed(cell, err) => Some((cell, err.to_string())),
        SupervisionEvent::ActorTerminated(cell, _, reason) => Some((cell, reason.unwrap_or_else(|| "stopped".into()))),
        _ => None,
    }
}
