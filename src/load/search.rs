//! `--find-max-rate --slo pXX=DURATION`: the highest rate whose corrected
//! percentile meets a latency target, found by a bounded search. Each probe
//! is a run of its own at one rate (`--step-duration`, after the warmup):
//! the rate doubles while the target is met (halves while it is not), then
//! bisects between the best met and the lowest missed rate, until the two
//! are within [`RESOLUTION`] of each other or `--max-steps` probes were run.
//!
//! A request that failed or was never sent counts as slower than any
//! target: a probe meets `pXX <= D` when at least XX% of its scheduled
//! requests completed within D. A server that drops requests cannot pass
//! by answering the rest quickly.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use super::config::LoadConfig;
use super::report::Accounting;
use super::text::us;
use crate::duration::parse_duration;

/// The search stops when the best met and the lowest missed rate are this
/// close (a fraction of the missed one).
pub const RESOLUTION: f64 = 0.05;

/// The default number of probes.
pub const DEFAULT_MAX_STEPS: usize = 12;

/// The most probes a search may run.
pub const MAX_STEPS: usize = 100;

/// The first rate tried without `--rate`.
pub const DEFAULT_START_RATE: f64 = 1000.0;

/// A latency target: `percentile` (0-100] within `target`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// The percentile, e.g. 99 or 99.9.
    pub percentile: f64,
    /// The latency it must not exceed.
    pub target: Duration,
}

/// Parses `p99=10ms`.
pub fn parse_slo(text: &str) -> Result<Slo, String> {
    let bad = || format!("--slo {text:?}: expected pXX=DURATION, e.g. p99=10ms or p99.9=2ms");
    let (p, d) = text.split_once('=').ok_or_else(bad)?;
    let p = p.strip_prefix('p').ok_or_else(bad)?;
    let percentile: f64 = p.parse().map_err(|_| bad())?;
    if !(percentile > 0.0 && percentile <= 100.0) {
        return Err(format!(
            "--slo {text:?}: the percentile must be in (0, 100]"
        ));
    }
    let target = parse_duration(d).map_err(|e| format!("--slo {text:?}: {e}"))?;
    if target.is_zero() {
        return Err(format!("--slo {text:?}: the target must be more than 0"));
    }
    Ok(Slo { percentile, target })
}

/// One probe of the search.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The rate tried.
    pub rate_per_sec: f64,
    /// What was achieved.
    pub achieved_rate_per_sec: f64,
    /// The corrected latency at the target's percentile (completed
    /// requests only).
    pub percentile_us: f64,
    /// Share of the scheduled requests completed within the target.
    pub within_target: f64,
    /// Whether the target was met.
    pub met: bool,
    /// What became of the probe's requests.
    pub accounting: Accounting,
    /// Errors.
    pub errors_total: u64,
}

/// The search's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    /// `pXX`.
    pub slo_percentile: f64,
    /// The latency target.
    pub slo_target_us: f64,
    /// The highest rate tried that met the target (`None`: none did).
    pub max_rate_per_sec: Option<f64>,
    /// Every probe, in the order run.
    pub probes: Vec<Probe>,
    /// Ctrl-C ended the search early.
    pub interrupted: bool,
}

/// Runs the search: `base`'s settings, `--rate` (or
/// [`DEFAULT_START_RATE`]) first, each probe `step` long.
pub fn find_max_rate(
    base: &LoadConfig,
    slo: Slo,
    step: Duration,
    max_steps: usize,
    stop: &AtomicBool,
) -> Result<Search, String> {
    if max_steps == 0 || max_steps > MAX_STEPS {
        return Err(format!("--max-steps must be 1 to {MAX_STEPS}"));
    }
    let mut search = Search {
        slo_percentile: slo.percentile,
        slo_target_us: slo.target.as_secs_f64() * 1e6,
        max_rate_per_sec: None,
        probes: Vec::new(),
        interrupted: false,
    };
    let mut rate = base.rate.unwrap_or(DEFAULT_START_RATE);
    let mut best: Option<f64> = None;
    let mut missed: Option<f64> = None;
    while search.probes.len() < max_steps {
        let mut config = base.clone();
        config.rate = Some(rate);
        config.duration = step;
        config.steps.clear();
        let report = super::run_until(&config, |_| {}, stop)?;
        if report.interrupted {
            search.interrupted = true;
            break;
        }
        let a = report.accounting.clone();
        let within = report
            .histograms
            .latency
            .histogram()
            .count_between(0, u64::try_from(slo.target.as_nanos()).unwrap_or(u64::MAX));
        let share = if a.scheduled == 0 {
            0.0
        } else {
            within as f64 / a.scheduled as f64
        };
        let met = a.scheduled > 0 && share * 100.0 >= slo.percentile - 1e-9;
        let percentile_us = report
            .histograms
            .latency
            .histogram()
            .value_at_quantile(slo.percentile / 100.0) as f64
            / 1000.0;
        search.probes.push(Probe {
            rate_per_sec: rate,
            achieved_rate_per_sec: report.requests_per_sec,
            percentile_us,
            within_target: share,
            met,
            accounting: a,
            errors_total: report.errors_total,
        });
        if met {
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        } else {
            missed = Some(missed.map_or(rate, |m: f64| m.min(rate)));
        }
        rate = match (best, missed) {
            (Some(b), None) => b * 2.0,
            (None, Some(m)) => m / 2.0,
            (Some(b), Some(m)) if (m - b) / m > RESOLUTION => (b + m) / 2.0,
            _ => break,
        };
    }
    search.max_rate_per_sec = best;
    Ok(search)
}

impl Search {
    /// The text report, 80 columns.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let slo = format!("p{}", self.slo_percentile);
        let target = us(self.slo_target_us);
        if self.interrupted {
            let _ = writeln!(s, "INTERRUPTED (Ctrl-C): partial search");
        }
        let _ = writeln!(s, "find-max-rate: {slo} <= {target} (corrected latency)");
        let _ = writeln!(
            s,
            "  {:>10} {:>10} {:>10} {:>8} {:>7} {:>7}  met",
            "rate/s", "achieved/s", slo, "within", "failed", "unsent"
        );
        for p in &self.probes {
            let _ = writeln!(
                s,
                "  {:>10.1} {:>10.1} {:>10} {:>7.2}% {:>7} {:>7}  {}",
                p.rate_per_sec,
                p.achieved_rate_per_sec,
                if p.accounting.completed == 0 {
                    "-".to_string()
                } else {
                    us(p.percentile_us)
                },
                p.within_target * 100.0,
                p.accounting.failed,
                p.accounting.unsent,
                if p.met { "yes" } else { "no" }
            );
        }
        match self.max_rate_per_sec {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "  highest rate that met {slo} <= {target}: {r:.1} requests/s"
                );
            }
            None => {
                let _ = writeln!(s, "  no rate tried met {slo} <= {target}");
            }
        }
        s
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_parse() {
        let s = parse_slo("p99=10ms").unwrap();
        assert_eq!(s.percentile, 99.0);
        assert_eq!(s.target, Duration::from_millis(10));
        assert_eq!(parse_slo("p99.9=250us").unwrap().percentile, 99.9);
        for bad in ["99=10ms", "p99", "p0=1ms", "p101=1ms", "p99=0s", "p99=fast"] {
            assert!(parse_slo(bad).is_err(), "{bad}");
        }
    }
}
