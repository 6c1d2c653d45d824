//! The live progress line on a terminal (stderr), redrawn in place.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::driver::{Clock, Progress};

/// Redraws one line: phase, elapsed time, requests, the rate, errors.
///
/// The rate is the change in responses (warmup included) over the time
/// between two draws: a count of the measured part alone over that time
/// would read low on the first measuring draw (only part of the interval
/// was measured) and 0 in the warmup.
pub struct ProgressLine {
    last_answered: u64,
    last_at: Instant,
}

/// What the line shows, read from the shared counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Requests completed in the measured part.
    pub requests: u64,
    /// Responses, warmup included.
    pub answered: u64,
    /// Connections established.
    pub connects: u64,
    /// Errors.
    pub errors: u64,
}

impl ProgressLine {
    /// Starts counting from now.
    pub fn new() -> Self {
        ProgressLine {
            last_answered: 0,
            last_at: Instant::now(),
        }
    }

    /// The line at `now`.
    pub fn line(&mut self, now: Instant, clock: &Clock, c: Counts) -> String {
        let dt = now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        let rate = c.answered.saturating_sub(self.last_answered) as f64 / dt;
        self.last_answered = c.answered;
        self.last_at = now;
        let total = clock.end.duration_since(clock.start).as_secs_f64();
        let elapsed = now
            .saturating_duration_since(clock.start)
            .as_secs_f64()
            .min(total);
        let head = if now < clock.measure_from {
            format!("warmup {elapsed:.1}/{total:.1} s")
        } else {
            format!(
                "measuring {elapsed:.1}/{total:.1} s  {} requests",
                c.requests
            )
        };
        format!(
            "{head}  {rate:.0} requests/s  {} connects  {} errors",
            c.connects, c.errors
        )
    }

    /// Draws the current state.
    pub fn draw(&mut self, clock: &Clock, p: &Progress) {
        let counts = Counts {
            requests: p.requests.load(Ordering::Relaxed),
            answered: p.answered.load(Ordering::Relaxed),
            connects: p.connects.load(Ordering::Relaxed),
            errors: p.errors.load(Ordering::Relaxed),
        };
        let line = self.line(Instant::now(), clock, counts);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Erases the line.
    pub fn clear(&self) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

impl Default for ProgressLine {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_cover_the_interval_they_are_drawn_over() {
        let t0 = Instant::now();
        let clock = Clock {
            start: t0,
            measure_from: t0 + Duration::from_secs(1),
            end: t0 + Duration::from_secs(11),
        };
        let mut p = ProgressLine {
            last_answered: 0,
            last_at: t0,
        };
        let ms = Duration::from_millis;
        // 100,000 responses/s throughout.
        let warm = p.line(
            t0 + ms(500),
            &clock,
            Counts {
                answered: 50_000,
                ..Counts::default()
            },
        );
        assert!(warm.starts_with("warmup 0.5/11.0 s"), "{warm}");
        assert!(warm.contains("  100000 requests/s"), "{warm}");
        // The first measuring draw: only 7 ms of its 0.5 s were measured.
        let first = p.line(
            t0 + ms(1007),
            &clock,
            Counts {
                requests: 700,
                answered: 100_700,
                ..Counts::default()
            },
        );
        assert!(first.contains("700 requests  100000 requests/s"), "{first}");
        let next = p.line(
            t0 + ms(1507),
            &clock,
            Counts {
                requests: 50_700,
                answered: 150_700,
                ..Counts::default()
            },
        );
        assert!(next.contains("50700 requests  100000 requests/s"), "{next}");
    }
}
