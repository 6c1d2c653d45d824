//! The load generator (`spindle load`) and the benchmark runner
//! (`spindle bench`).
//!
//! ## Brief overview
//!
//! * [`LoadConfig`]: what a run does — workload, target, connections,
//!   threads, duration, warmup, open-loop `rate`.
//! * [`run`]: opens the connections on `threads` mio event loops
//!   (`driver.rs`), drives each with its workload's [`Client`] state machine
//!   (`echo.rs`, `http.rs`, `chat.rs`; idle connections send nothing), and
//!   returns a [`Report`].
//! * [`Latency`]: HDR histograms, every sample recorded; [`Schedule`]: the
//!   open-loop send times that latency is measured from (coordinated
//!   omission); [`ErrorTally`]: errors by kind with a sample cause.
//! * [`Report`]: text for people, JSON (units in field names) for machines.
//! * [`bench`]: `spindle bench` — serve, sweep, sample `/proc`, write
//!   `results.json`, `results.md` and SVG charts.
//!
//! ```no_run
//! use spindle::load::{self, LoadConfig, Workload};
//!
//! let mut config = LoadConfig::new(Workload::Echo, "127.0.0.1:1234".parse()?);
//! config.connections = 64;
//! config.duration = std::time::Duration::from_secs(5);
//! let report = load::run(&config)?;
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub mod args;
pub mod bench;
mod chart;
pub mod chat;
mod client;
mod codec;
pub mod config;
mod driver;
pub mod echo;
pub mod errors;
pub mod hdrfiles;
pub mod http;
pub mod idle;
pub mod latency;
pub mod merge;
mod procstat;
mod progress;
pub mod report;
pub mod rlimit;
pub mod schedule;
pub mod search;
pub mod stats;
pub mod text;
pub mod timeline;
mod timerfd;

pub use client::{Client, Sink};
pub use config::{LoadConfig, Probe, Workload};
pub use errors::{ErrorKind, ErrorTally, Fault};
pub use latency::{Latency, LatencySummary};
pub use report::Report;
pub use schedule::Schedule;
pub use stats::{Fairness, Stats};

use driver::{Clock, Driver, NOT_STOPPED, Progress};

/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// How often the stop flag is looked at (Ctrl-C to report).
const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How far ahead of the Ctrl-C the run's end is set, so that every load
/// thread (each looks at least every 100 ms) sees it before it passes and
/// they all end at the same instant.
const STOP_LEAD: Duration = Duration::from_millis(200);

/// Runs `config` to the end and reports. Errors are only for what stops a
/// run from starting (bad settings, too few file descriptors, a thread that
/// cannot start); what goes wrong with connections is in the report.
pub fn run(config: &LoadConfig) -> Result<Report, String> {
    run_observed(config, |_| {})
}

/// When a run counts: from the end of the warmup to the end of the run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Counting starts (the warmup is over).
    pub measure_from: Instant,
    /// Counting stops; connections close after this.
    pub end: Instant,
}

/// [`run`], telling `on_start` the measured window as the run starts, so
/// that an observer (`spindle bench`'s `/proc` sampler) can read the server
/// at the window's edges rather than around the whole run.
pub fn run_observed(config: &LoadConfig, on_start: impl FnOnce(Window)) -> Result<Report, String> {
    run_until(config, on_start, &AtomicBool::new(false))
}

/// [`run_observed`], cut short when `stop` becomes true (a Ctrl-C
/// handler sets it): the run ends at once, without the drain, and the
/// report covers what was measured until then, marked interrupted.
pub fn run_until(
    config: &LoadConfig,
    on_start: impl FnOnce(Window),
    stop: &AtomicBool,
) -> Result<Report, String> {
    config.validate()?;
    rlimit::ensure_open_files(config.connections as u64 + rlimit::SPARE_FILES)?;
    let config = Arc::new(config.clone());
    if let Some(at) = config.start_at
        && !wait_for(at, stop)
    {
        let stats = Stats {
            interrupted: true,
            ..Stats::default()
        };
        return Ok(Report::new(&config, &stats, 0.0));
    }
    let start = Instant::now();
    let wall_start = std::time::SystemTime::now();
    let clock = Clock {
        start,
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    on_start(Window {
        measure_from: clock.measure_from,
        end: clock.end,
    });
    let progress = Arc::new(Progress::default());
    let stop_at = Arc::new(AtomicU64::new(NOT_STOPPED));
    let threads = config.threads.min(config.connections);
    let (done_tx, done_rx) = crossbeam_channel::bounded(threads);
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let clients: Vec<(usize, Box<dyn Client>)> = (t..config.connections)
            .step_by(threads)
            .map(|slot| (slot, client_for(&config, slot, start)))
            .collect();
        let driver = Driver::new(
            config.clone(),
            clock,
            clients,
            progress.clone(),
            stop_at.clone(),
        )
        .map_err(|e| format!("cannot create an event loop: {e}"))?;
        let tx = done_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("spindle-load-{t}"))
            .spawn(move || {
                let _ = tx.send(driver.run());
            })
            .map_err(|e| format!("cannot start a load thread: {e}"))?;
        handles.push(handle);
    }
    drop(done_tx);
    let mut line = config.progress.then(progress::ProgressLine::new);
    let mut merged = Stats::default();
    let mut failure = None;
    let mut finished = 0;
    let mut drawn = Instant::now();
    while finished < threads {
        if stop.load(Ordering::Relaxed) && stop_at.load(Ordering::Relaxed) == NOT_STOPPED {
            let at = start.elapsed() + STOP_LEAD;
            let at = u64::try_from(at.as_nanos()).unwrap_or(NOT_STOPPED - 1);
            stop_at.store(at, Ordering::Relaxed);
        }
        match done_rx.recv_timeout(STOP_CHECK_INTERVAL) {
            Ok(Ok(stats)) => {
                merged.merge(&stats);
                finished += 1;
            }
            Ok(Err(e)) => {
                failure = Some(format!("a load thread failed: {e}"));
                finished += 1;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Some(l) = line.as_mut()
                    && drawn.elapsed() >= PROGRESS_INTERVAL
                {
                    l.draw(&clock, &progress);
                    drawn = Instant::now();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                failure = Some("a load thread died".to_string());
                break;
            }
        }
    }
    if let Some(l) = &line {
        l.clear();
    }
    for h in handles {
        if h.join().is_err() {
            failure = Some("a load thread panicked".to_string());
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let measured = match merged.ended_at {
        Some(end) => end.saturating_duration_since(clock.measure_from),
        None => config.duration,
    };
    let mut report = Report::new(&config, &merged, measured.as_secs_f64());
    report.measured_from_unix_sec = (wall_start + config.warmup)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Ok(report)
}

/// Waits until the wall clock reads `at` (`--start-at`); false if `stop`
/// came first.
fn wait_for(at: std::time::SystemTime, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(left) = at.duration_since(std::time::SystemTime::now()) else {
            return true;
        };
        if left.is_zero() {
            return true;
        }
        // Waiting for a time is what --start-at asks for; the stop flag is
        // looked at between naps.
        thread::sleep(left.min(STOP_CHECK_INTERVAL));
    }
}

/// The workload's client for connection `slot`.
fn client_for(config: &LoadConfig, slot: usize, epoch: Instant) -> Box<dyn Client> {
    match config.workload {
        Workload::Echo => Box::new(echo::EchoClient::new(config.size)),
        Workload::Http => Box::new(http::HttpClient::new(
            &config.host,
            &config.path,
            config.keepalive,
            true,
        )),
        Workload::Chat => Box::new(chat::ChatClient::new(
            slot,
            epoch,
            slot < config.senders,
            config.size,
        )),
        Workload::Idle => {
            let probing = slot < config.probes;
            match config.probe {
                Some(Probe::Http) if probing => Box::new(http::HttpClient::new(
                    &config.host,
                    &config.path,
                    config.keepalive,
                    true,
                )),
                Some(Probe::Echo) if probing => Box::new(echo::EchoClient::new(config.size)),
                _ => Box::new(idle::SilentClient),
            }
        }
    }
}
