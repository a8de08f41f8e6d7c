//! When to send a failed call again, and how long to wait first.
//!
//! Only failures that say nothing about whether the server acted are
//! retried (a connection that failed or a call that timed out; see
//! `ClientError::is_retryable`), and only calls that are safe to repeat:
//! under this protocol a `put` stores the same point again (its timestamp
//! is fixed before the first attempt) and a `get` has no effect.
//!
//! Waits grow exponentially and are drawn at random below that bound ("full
//! jitter"), so clients that lost the same server do not come back in step.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: 1 never retries.
    pub attempts: u32,
    /// The bound of the first wait; each further wait doubles it.
    pub backoff: Duration,
    /// No wait is longer than this.
    pub cap: Duration,
}

impl RetryPolicy {
    /// One attempt: a failed call is never sent again.
    pub const NEVER: RetryPolicy = RetryPolicy {
        attempts: 1,
        backoff: Duration::ZERO,
        cap: Duration::ZERO,
    };

    /// The wait before attempt `attempt + 1` (after `attempt` failures,
    /// `attempt >= 1`), for a `random` number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let doubling = 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
        let bound = (self.backoff.as_secs_f64() * doubling).min(self.cap.as_secs_f64());
        Duration::from_secs_f64(bound * random.clamp(0.0, 1.0))
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let here = &nanos as *const u64 as u64;
    (nanos ^ (u64::from(std::process::id()) << 32) ^ here) | 1
}

/// A number in `[0, 1)` for jitter (xorshift64*: spreading waits needs no
/// more than this, and no dependency).
pub fn jitter() -> f64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_jitter_stays_below_the_bound() {
        let policy = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_millis(100),
            cap: Duration::from_millis(500),
        };
        let full = |attempt| policy.delay(attempt, 1.0).as_millis();
        assert_eq!(
            [full(1), full(2), full(3), full(4), full(40)],
            [100, 200, 400, 500, 500]
        );
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
        for _ in 0..1000 {
            let r = jitter();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
        assert_ne!(jitter(), jitter());
    }
}
