//! The live progress line on a terminal (stderr), redrawn in place.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::driver::{Clock, Progress};

/// Redraws one line: elapsed time, requests and their rate, errors.
pub struct ProgressLine {
    last_requests: u64,
    last_at: Instant,
}

impl ProgressLine {
    /// Starts counting from now.
    pub fn new() -> Self {
        ProgressLine {
            last_requests: 0,
            last_at: Instant::now(),
        }
    }

    /// Draws the current state.
    pub fn draw(&mut self, clock: &Clock, p: &Progress) {
        let now = Instant::now();
        let requests = p.requests.load(Ordering::Relaxed);
        let dt = now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        let rate = (requests - self.last_requests.min(requests)) as f64 / dt;
        self.last_requests = requests;
        self.last_at = now;
        let phase = if now < clock.measure_from {
            "warmup"
        } else {
            "measuring"
        };
        let total = clock.end.duration_since(clock.start).as_secs_f64();
        let elapsed = now
            .saturating_duration_since(clock.start)
            .as_secs_f64()
            .min(total);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{phase} {elapsed:.1}/{total:.1} s  {requests} requests  {rate:.0} requests/s  {} connects  {} errors",
            p.connects.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
        );
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
