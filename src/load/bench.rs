//! `spindle bench`: serve a protocol on each concurrency model in a child
//! `spindle serve` process, sweep connection counts against it with the
//! load generator, sample the server's resources from `/proc` during each
//! point, and write `results.json`, `results.md` and SVG charts.
//!
//! A point that fails (the server died, nothing succeeded) is recorded as
//! failed and the sweep goes on; a dead server is restarted for the next
//! point. Every point is bounded by its warmup, duration and timeouts.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::args::BenchArgs;
use super::chart::{self, Series};
use super::config::{LoadConfig, Probe, Workload};
use super::errors::ErrorCount;
use super::latency::LatencySummary;
use super::procstat::{self, Sample};
use super::report::{Accounting, Interval};
use super::stats::Fairness;
use super::text::count;
use crate::catalog;
use crate::engine::Model;

/// How long a child server gets to log its port.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a child server gets to exit after SIGTERM before it is killed.
pub const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Time between two `/proc` samples during a point.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// How long before the end of the measured window its closing sample is
/// taken, beyond twice the time a sample takes (reading a tree of hundreds
/// of processes takes tens of milliseconds): early enough that no
/// connection (and so no connection's thread or process, whose counters
/// die with it) has closed before the sample is complete.
pub const END_SAMPLE_LEAD: Duration = Duration::from_millis(50);

/// The listen backlog of bench servers: deep enough for the connection ramp.
pub const BENCH_BACKLOG: u32 = 1024;

/// Idle-point probes, and how often each probes.
const IDLE_PROBES: usize = 4;
const IDLE_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// The warm-up load a fresh server gets before its memory baseline is
/// taken (one connection of the suite's workload): a server's first
/// connection grows it by much more than any later one does (allocator
/// arenas, the first worker's stack, lazily built tables), and charging
/// that to the first point's connections made 1 connection look like
/// 2.5 MiB.
pub const SERVER_WARMUP: Duration = Duration::from_millis(300);

/// The whole bench run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResults {
    /// The suite (the protocol served).
    pub suite: String,
    /// The command that produced these results.
    pub command: String,
    /// CPUs online on this machine.
    pub cpus: usize,
    /// Measured time per point.
    pub duration_sec: f64,
    /// Warmup per point.
    pub warmup_sec: f64,
    /// `closed_loop` or `open_loop`.
    pub mode: String,
    /// The timeline's interval.
    pub interval_sec: f64,
    /// Every point, model by model.
    pub points: Vec<Point>,
}

/// One model at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The concurrency model.
    pub model: String,
    /// The workload (`idle` for the idle point).
    pub workload: String,
    /// Connections asked for.
    pub connections: usize,
    /// Whether the point produced numbers.
    pub ok: bool,
    /// Why not, if it failed.
    pub failure: Option<String>,
    /// Requests/s (idle: probes/s).
    pub requests_per_sec: f64,
    /// Request latency.
    pub latency_us: LatencySummary,
    /// Connections established.
    pub connections_established: u64,
    /// Connections open at the end.
    pub connections_open_at_end: u64,
    /// Connections still connecting at the end.
    pub connections_connecting_at_end: u64,
    /// Requests per connection.
    pub fairness: Fairness,
    /// All errors.
    pub errors_total: u64,
    /// By kind.
    pub errors: Vec<ErrorCount>,
    /// Every request due, and what became of it.
    pub accounting: Accounting,
    /// When the measured window began (seconds since the Unix epoch).
    pub measured_from_unix_sec: f64,
    /// The measured window interval by interval.
    pub timeline: Vec<Interval>,
    /// What the server used.
    pub server: ServerUse,
}

/// The server's resources during a point.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerUse {
    /// Resident memory just before this point's connections opened
    /// (after the earlier points: larger than the fresh server's).
    pub rss_before_kib: u64,
    /// Resident memory of the fresh server, before any load.
    pub rss_at_start_kib: u64,
    /// Resident memory after the warm-up load ([`SERVER_WARMUP`]), its
    /// connection closed: the baseline of `rss_per_connection_kib`.
    pub rss_warm_kib: u64,
    /// Resident memory when the measured window began, every connection
    /// of the point open (what `memory.svg` plots).
    pub rss_measured_kib: u64,
    /// Highest resident memory during the point.
    pub rss_max_kib: u64,
    /// What an open connection costs, as NOTES section 2 measures it:
    /// `(rss_measured - rss_warm) / connections open at the end`.
    pub rss_per_connection_kib: Option<f64>,
    /// Most threads during the point (the server's and its children's).
    pub threads_max: u64,
    /// Most processes during the point: 1, or the server and its children.
    pub processes_max: u64,
    /// The span between the two samples the CPU and context-switch figures
    /// come from: the measured window, less the lead of its closing sample
    /// ([`END_SAMPLE_LEAD`]).
    pub sampled_sec: f64,
    /// CPU time used in the sampled span (every thread and process).
    pub cpu_sec: f64,
    /// `cpu_sec` over `sampled_sec`, in percent of one core.
    pub cpu_percent: f64,
    /// Server CPU time per request served, microseconds.
    pub cpu_us_per_request: Option<f64>,
    /// Voluntary context switches in the sampled span (every thread and
    /// process).
    pub voluntary_context_switches: u64,
    /// Involuntary context switches in the sampled span.
    pub involuntary_context_switches: u64,
    /// Both kinds of context switch per request served.
    pub context_switches_per_request: Option<f64>,
}

/// The workload that exercises `suite`.
fn workload_of(suite: &str) -> Result<Workload, String> {
    let workload = match suite {
        "echo" => Workload::Echo,
        "http" => Workload::Http,
        "chat" => Workload::Chat,
        other => {
            return Err(format!(
                "no bench suite {other:?} (suites: echo, http, chat)"
            ));
        }
    };
    if !catalog::NAMES.contains(&suite) {
        return Err(format!(
            "this build cannot `spindle serve {suite}`, so it cannot bench it"
        ));
    }
    Ok(workload)
}

/// The models asked for (default: all of them).
fn models_of(names: &[String]) -> Result<Vec<Model>, String> {
    if names.is_empty() {
        return Ok(Model::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            Model::from_name(n).ok_or_else(|| {
                let known: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
                format!("unknown model {n:?} (known: {})", known.join(", "))
            })
        })
        .collect()
}

/// Checks the arguments (a usage error names the bad one).
pub fn check(args: &BenchArgs) -> Result<(), String> {
    workload_of(&args.suite)?;
    models_of(&args.models)?;
    if args.connections.contains(&0) {
        return Err("--connections counts must be at least 1".into());
    }
    if args.duration.is_zero() {
        return Err("--duration must be more than 0".into());
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(())
}

/// Runs the bench. `exe` is the `spindle` binary to serve with; `command`
/// is recorded in the results. `Err` for bad arguments (see [`check`]), too
/// few file descriptors, or an output directory that cannot be written;
/// failed points are in the results.
pub fn run(args: &BenchArgs, exe: &Path, command: &str) -> Result<BenchResults, String> {
    check(args)?;
    let workload = workload_of(&args.suite)?;
    let models = models_of(&args.models)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let biggest = args
        .connections
        .iter()
        .copied()
        .chain([args.idle])
        .max()
        .unwrap_or(1);
    super::rlimit::ensure_open_files(biggest as u64 + super::rlimit::SPARE_FILES)?;
    let mut points = Vec::new();
    for model in models {
        let mut server: Option<ServerProcess> = None;
        let mut sweep: Vec<(Workload, usize)> =
            args.connections.iter().map(|&c| (workload, c)).collect();
        if args.idle > 0 {
            sweep.push((Workload::Idle, args.idle));
        }
        for (w, connections) in sweep {
            eprintln!(
                "bench: {} on {model}, {} {}...",
                args.suite,
                count(connections as u64, "connection", "connections"),
                w.name()
            );
            if server.as_mut().is_none_or(|s| !s.alive()) {
                server = match ServerProcess::start(exe, &args.suite, model, &args.serve_args) {
                    Ok(mut s) => {
                        s.warm_up(workload, args);
                        Some(s)
                    }
                    Err(e) => {
                        eprintln!("bench:   failed: {e}");
                        points.push(failed(model, w, connections, e));
                        continue;
                    }
                };
            }
            let Some(s) = server.as_ref() else { continue };
            let point = measure(args, s, model, workload, w, connections);
            match &point.failure {
                None => eprintln!(
                    "bench:   {:.0} requests/s, p99 {:.1} us, {}, server {} KiB RSS, {}",
                    point.requests_per_sec,
                    point.latency_us.p99,
                    count(point.errors_total, "error", "errors"),
                    point.server.rss_max_kib,
                    count(point.server.threads_max, "thread", "threads")
                ),
                Some(f) => eprintln!("bench:   failed: {f}"),
            }
            points.push(point);
        }
        if let Some(s) = server {
            s.stop();
        }
    }
    let results = BenchResults {
        suite: args.suite.clone(),
        command: command.to_string(),
        cpus: thread::available_parallelism().map_or(1, |n| n.get()),
        duration_sec: args.duration.as_secs_f64(),
        warmup_sec: args.warmup.as_secs_f64(),
        mode: if args.rate.is_some() {
            "open_loop"
        } else {
            "closed_loop"
        }
        .to_string(),
        interval_sec: args.interval.as_secs_f64(),
        points,
    };
    write_outputs(&args.out, &results)?;
    Ok(results)
}

fn failed(model: Model, w: Workload, connections: usize, why: String) -> Point {
    Point {
        model: model.name().to_string(),
        workload: w.name().to_string(),
        connections,
        ok: false,
        failure: Some(why),
        requests_per_sec: 0.0,
        latency_us: LatencySummary::default(),
        connections_established: 0,
        connections_open_at_end: 0,
        connections_connecting_at_end: 0,
        fairness: Fairness::default(),
        errors_total: 0,
        errors: Vec::new(),
        accounting: Accounting::default(),
        measured_from_unix_sec: 0.0,
        timeline: Vec::new(),
        server: ServerUse::default(),
    }
}

/// A run of `w` with `connections` against `port`, shaped by `args`.
fn point_config(args: &BenchArgs, port: u16, w: Workload, connections: usize) -> LoadConfig {
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut config = LoadConfig::new(w, target);
    config.connections = connections;
    config.threads = args.threads.min(connections).max(1);
    config.duration = args.duration;
    config.warmup = args.warmup;
    config.rate = args.rate;
    config.interval = args.interval;
    config.connect_rate = (args.connect_rate > 0.0).then_some(args.connect_rate);
    config
}

/// One point: the load run, with the server sampled throughout.
fn measure(
    args: &BenchArgs,
    server: &ServerProcess,
    model: Model,
    suite: Workload,
    w: Workload,
    connections: usize,
) -> Point {
    let mut config = point_config(args, server.port, w, connections);
    if w == Workload::Idle {
        // The ramp happens in the warmup, so the whole measured time holds
        // every connection.
        let ramp = config.connect_rate.map_or(0.0, |r| connections as f64 / r);
        config.warmup += Duration::from_secs_f64(ramp);
        config.probe = match suite {
            Workload::Http => Some(Probe::Http),
            Workload::Echo => Some(Probe::Echo),
            _ => None,
        };
        config.probes = if config.probe.is_some() {
            IDLE_PROBES.min(connections)
        } else {
            0
        };
        config.probe_interval = IDLE_PROBE_INTERVAL;
    }
    let before = procstat::sample(server.pid()).unwrap_or_default();
    let baseline = server.warm_rss_kib;
    let (window_tx, window_rx) = crossbeam_channel::bounded(1);
    let sampler = Sampler::start(server.pid(), window_rx);
    let result = super::run_observed(&config, |w| {
        let _ = window_tx.send(w);
    });
    let edges = sampler.stop();
    let mut point = failed(model, w, connections, String::new());
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            point.failure = Some(e);
            return point;
        }
    };
    // A counter that went down means a thread or process ended inside the
    // span and took its counts along: the difference means nothing then.
    let switches = |s: &Sample| s.voluntary_context_switches + s.involuntary_context_switches;
    let window = edges
        .window
        .filter(|((a, _), (b, _))| b.cpu_sec + 1e-6 >= a.cpu_sec && switches(b) >= switches(a));
    if edges.window.is_some() && window.is_none() {
        eprintln!(
            "bench:   a thread or process ended during the measured window; \
             no CPU or context-switch figures for this point"
        );
    }
    let (first, last) = window.unwrap_or(((before, 0.0), (before, 0.0)));
    let span = (last.1 - first.1).max(0.0);
    let cpu_sec = (last.0.cpu_sec - first.0.cpu_sec).max(0.0);
    // Per request: the span's rate over the window's rate of requests.
    let per_request = |amount: f64| {
        (span > 0.0 && report.requests_per_sec > 0.0)
            .then(|| amount / span / report.requests_per_sec)
    };
    // The window's first sample holds every connection of the point.
    let measured_rss = edges
        .window
        .map_or(edges.max.rss_kib, |((a, _), _)| a.rss_kib);
    let used = ServerUse {
        rss_before_kib: before.rss_kib,
        rss_at_start_kib: server.fresh_rss_kib,
        rss_warm_kib: baseline,
        rss_measured_kib: measured_rss,
        rss_max_kib: edges.max.rss_kib,
        rss_per_connection_kib: (report.connections_open_at_end > 0).then(|| {
            measured_rss.saturating_sub(baseline) as f64 / report.connections_open_at_end as f64
        }),
        threads_max: edges.max.threads,
        processes_max: edges.max.processes,
        sampled_sec: span,
        cpu_sec,
        cpu_percent: if span > 0.0 {
            cpu_sec / span * 100.0
        } else {
            0.0
        },
        cpu_us_per_request: per_request(cpu_sec * 1e6),
        voluntary_context_switches: last
            .0
            .voluntary_context_switches
            .saturating_sub(first.0.voluntary_context_switches),
        involuntary_context_switches: last
            .0
            .involuntary_context_switches
            .saturating_sub(first.0.involuntary_context_switches),
        context_switches_per_request: per_request(
            switches(&last.0).saturating_sub(switches(&first.0)) as f64,
        ),
    };
    point.ok = report.succeeded() && server.alive_now();
    point.failure = if !server.alive_now() {
        Some("the server exited during the point".to_string())
    } else if !report.succeeded() {
        Some(format!(
            "nothing succeeded ({} errors)",
            report.errors_total
        ))
    } else {
        None
    };
    point.requests_per_sec = report.requests_per_sec;
    point.latency_us = report.latency_us;
    point.connections_established = report.connections_established;
    point.connections_open_at_end = report.connections_open_at_end;
    point.connections_connecting_at_end = report.connections_connecting_at_end;
    point.fairness = report.fairness;
    point.errors_total = report.errors_total;
    point.errors = report.errors;
    point.accounting = report.accounting;
    point.measured_from_unix_sec = report.measured_from_unix_sec;
    point.timeline = report.timeline;
    point.server = used;
    point
}

/// What a [`Sampler`] saw: the peaks, and the samples at the measured
/// window's edges with the seconds since the first was taken.
struct Edges {
    max: Sample,
    window: Option<((Sample, f64), (Sample, f64))>,
}

/// Samples a process tree every [`SAMPLE_INTERVAL`] on a thread of its own
/// for the peaks, and once at each edge of the measured window (the window
/// arrives on a channel when the run starts).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Edges>>,
}

impl Sampler {
    fn start(pid: u32, window: crossbeam_channel::Receiver<super::Window>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("spindle-bench-sampler".into())
            .spawn(move || {
                let mut max = Sample::default();
                let mut known: Option<super::Window> = None;
                let mut first: Option<(Sample, Instant)> = None;
                let mut last: Option<(Sample, Instant)> = None;
                let mut lead = END_SAMPLE_LEAD;
                loop {
                    if known.is_none() {
                        known = window.try_recv().ok();
                    }
                    let at = Instant::now();
                    let sampled = procstat::sample(pid);
                    lead = lead.max(END_SAMPLE_LEAD + 2 * at.elapsed());
                    if let Some(s) = sampled {
                        max.rss_kib = max.rss_kib.max(s.rss_kib);
                        max.threads = max.threads.max(s.threads);
                        max.processes = max.processes.max(s.processes);
                        if let Some(w) = known {
                            if first.is_none() && at >= w.measure_from {
                                first = Some((s, at));
                            } else if first.is_some() && last.is_none() && at + lead >= w.end {
                                last = Some((s, at));
                            }
                        }
                    }
                    if flag.load(Ordering::SeqCst) {
                        let window = first.zip(last).map(|((a, ta), (b, tb))| {
                            ((a, 0.0), (b, tb.duration_since(ta).as_secs_f64()))
                        });
                        return Edges { max, window };
                    }
                    // Sampling cadence, not synchronisation: stop() unparks
                    // us. Wake exactly at the next edge of the window.
                    let now = Instant::now();
                    let next_edge = known.and_then(|w| match (first, last) {
                        (None, _) => Some(w.measure_from),
                        (Some(_), None) => Some(w.end.checked_sub(lead)?),
                        _ => None,
                    });
                    let wait = next_edge
                        .map_or(SAMPLE_INTERVAL, |e| e.saturating_duration_since(now))
                        .min(SAMPLE_INTERVAL);
                    thread::park_timeout(wait);
                }
            })
            .ok();
        Sampler { stop, thread }
    }

    /// The peaks and the window's edges.
    fn stop(mut self) -> Edges {
        self.stop.store(true, Ordering::SeqCst);
        let nothing = || Edges {
            max: Sample::default(),
            window: None,
        };
        match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join().unwrap_or_else(|_| nothing())
            }
            None => nothing(),
        }
    }
}

/// A `spindle serve` child process.
struct ServerProcess {
    child: std::sync::Mutex<Child>,
    pid: u32,
    port: u16,
    /// RSS once it listens, before any load.
    fresh_rss_kib: u64,
    /// RSS after the warm-up load (see [`SERVER_WARMUP`]).
    warm_rss_kib: u64,
}

impl ServerProcess {
    fn start(
        exe: &Path,
        suite: &str,
        model: Model,
        extra: &[String],
    ) -> Result<ServerProcess, String> {
        let listen = format!("tcp:port=0:interface=127.0.0.1:backlog={BENCH_BACKLOG}");
        let mut command = Command::new(exe);
        command
            .args(["serve", suite, "--listen", &listen, "--model", model.name()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        // If the bench dies (SIGTERM, SIGKILL), the server it started gets
        // SIGTERM instead of serving on, orphaned, on its port.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let pid = child.id();
        let Some(stderr) = child.stderr.take() else {
            return Err("no stderr from the server".into());
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        // Reads the log to its end so the server never blocks on a full pipe;
        // reports the port, or the last line if it exits first.
        let reader = thread::Builder::new()
            .name("spindle-bench-log".into())
            .spawn(move || {
                let mut sent = false;
                let mut last = String::new();
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent && let Some(port) = port_in(&line) {
                        let _ = tx.send(Ok(port));
                        sent = true;
                    }
                    last = line;
                }
                if !sent {
                    let _ = tx.send(Err(last));
                }
            });
        if let Err(e) = reader {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot start a log reader: {e}"));
        }
        let port = match rx.recv_timeout(SERVER_START_TIMEOUT) {
            Ok(Ok(port)) => port,
            Ok(Err(last)) => {
                let _ = child.wait();
                return Err(format!("the server exited at start: {last}"));
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the server logged no port within {SERVER_START_TIMEOUT:?}"
                ));
            }
        };
        Ok(ServerProcess {
            child: std::sync::Mutex::new(child),
            pid,
            port,
            fresh_rss_kib: procstat::sample(pid).map_or(0, |s| s.rss_kib),
            warm_rss_kib: 0,
        })
    }

    /// One connection of `workload` for [`SERVER_WARMUP`], then the
    /// memory baseline, with that connection closed. A failed warm-up
    /// leaves the fresh server's RSS as the baseline (the points say why).
    fn warm_up(&mut self, workload: Workload, args: &BenchArgs) {
        let mut config = point_config(args, self.port, workload, 1);
        config.warmup = Duration::ZERO;
        config.duration = SERVER_WARMUP;
        config.rate = None;
        config.timeout = SERVER_WARMUP.max(Duration::from_secs(1));
        let fresh = procstat::sample(self.pid).unwrap_or_default();
        if let Err(e) = super::run(&config) {
            eprintln!("bench:   the warm-up load failed: {e}");
        }
        // The server sees the close after we do: wait (bounded) until its
        // threads and processes are back to the fresh server's, so the
        // warm-up connection's own thread or process is not in the baseline.
        let end = Instant::now() + SERVER_STOP_TIMEOUT;
        let mut last = procstat::sample(self.pid);
        while let Some(s) = &last {
            if (s.threads <= fresh.threads && s.processes <= fresh.processes)
                || Instant::now() >= end
            {
                break;
            }
            // A bounded poll of /proc, not a synchronisation sleep.
            thread::park_timeout(SAMPLE_INTERVAL / 4);
            last = procstat::sample(self.pid);
        }
        self.warm_rss_kib = last.map_or(self.fresh_rss_kib, |s| s.rss_kib);
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    fn alive(&mut self) -> bool {
        self.alive_now()
    }

    fn alive_now(&self) -> bool {
        match self.child.lock() {
            Ok(mut c) => matches!(c.try_wait(), Ok(None)),
            Err(_) => false,
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited in time.
    fn stop(self) {
        let Ok(mut child) = self.child.into_inner() else {
            return;
        };
        // SAFETY: kill takes no pointers; pid is our own child's.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        let end = Instant::now() + SERVER_STOP_TIMEOUT;
        while Instant::now() < end {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            thread::park_timeout(Duration::from_millis(20));
        }
        eprintln!("bench: the server did not stop within {SERVER_STOP_TIMEOUT:?}; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The port in a `... starting on ADDRESS:PORT` log line.
fn port_in(line: &str) -> Option<u16> {
    let rest = &line[line.find(" starting on ")? + " starting on ".len()..];
    let address = rest.split_whitespace().next()?;
    address.rsplit_once(':')?.1.parse().ok()
}

/// Writes results.json, results.md, throughput.svg, p99.svg, memory.svg.
fn write_outputs(dir: &Path, results: &BenchResults) -> Result<(), String> {
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    write("results.json", &json)?;
    write("results.md", &markdown(results))?;
    let series = |f: &dyn Fn(&Point) -> Option<f64>, idle: bool| -> Vec<Series> {
        let mut models: Vec<&str> = Vec::new();
        for p in &results.points {
            if !models.contains(&p.model.as_str()) {
                models.push(&p.model);
            }
        }
        models
            .into_iter()
            .map(|m| Series {
                label: m.to_string(),
                points: results
                    .points
                    .iter()
                    .filter(|p| p.model == m && p.ok && (idle || p.workload != "idle"))
                    .filter_map(|p| f(p).map(|v| (p.connections as f64, v)))
                    .collect(),
            })
            .collect()
    };
    let suite = &results.suite;
    chart::line_chart(
        &dir.join("throughput.svg"),
        &format!("{suite}: throughput"),
        "requests/s",
        &series(&|p| Some(p.requests_per_sec), false),
    )?;
    chart::line_chart(
        &dir.join("p99.svg"),
        &format!("{suite}: p99 latency"),
        "p99 latency (us)",
        &series(&|p| Some(p.latency_us.p99), false),
    )?;
    chart::line_chart(
        &dir.join("memory.svg"),
        &format!("{suite}: memory of an open connection (RSS over the warmed-up server's)"),
        "(RSS at the measured start - warmed-up RSS) / open connections (KiB)",
        &series(&|p| p.server.rss_per_connection_kib, true),
    )?;
    chart::time_chart(
        &dir.join("timeline.svg"),
        &format!(
            "{suite}: requests/s per {:.3} s interval, point after point",
            results.interval_sec
        ),
        "seconds since the first point's measured start",
        "requests/s",
        &timeline_series(results),
    )?;
    Ok(())
}

/// One line per model through every point's intervals, in wall-clock
/// order, at 0 between two points (nothing was measured there).
fn timeline_series(results: &BenchResults) -> Vec<Series> {
    let t0 = results
        .points
        .iter()
        .filter(|p| p.measured_from_unix_sec > 0.0)
        .map(|p| p.measured_from_unix_sec)
        .fold(f64::INFINITY, f64::min);
    let mut out: Vec<Series> = Vec::new();
    for p in results.points.iter().filter(|p| !p.timeline.is_empty()) {
        let idx = match out.iter().position(|s| s.label == p.model) {
            Some(i) => i,
            None => {
                out.push(Series {
                    label: p.model.clone(),
                    points: Vec::new(),
                });
                out.len() - 1
            }
        };
        let start = p.measured_from_unix_sec - t0;
        let points = &mut out[idx].points;
        points.push((start, 0.0));
        let mut end = start;
        for i in &p.timeline {
            let rate = if i.duration_sec > 0.0 {
                i.requests as f64 / i.duration_sec
            } else {
                0.0
            };
            points.push((start + i.start_sec + i.duration_sec / 2.0, rate));
            end = start + i.start_sec + i.duration_sec;
        }
        points.push((end, 0.0));
    }
    out
}

/// The widest line of [`summary`].
pub const SUMMARY_WIDTH: usize = 80;

/// A short summary for the terminal, at most [`SUMMARY_WIDTH`] columns:
/// model, workload, connections, requests/s, p99, errors, connections
/// without service. The full table is in results.md.
pub fn summary(r: &BenchResults) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "spindle bench {}: {}, {:.1} s per point, {}",
        r.suite,
        count(r.cpus as u64, "CPU", "CPUs"),
        r.duration_sec,
        r.mode.replace('_', " ")
    );
    let _ = writeln!(
        s,
        "{:<8} {:<8} {:>11} {:>11} {:>10} {:>8} {:>9}",
        "model", "workload", "connections", "requests/s", "p99", "errors", "unserved"
    );
    for p in &r.points {
        let head = format!("{:<8} {:<8} {:>11}", p.model, p.workload, p.connections);
        let line = match &p.failure {
            Some(f) => {
                let room = SUMMARY_WIDTH - head.chars().count() - 1;
                let why: String = format!("failed: {f}").chars().take(room).collect();
                format!("{head} {why}")
            }
            None => format!(
                "{head} {:>11.0} {:>10} {:>8} {:>9}",
                p.requests_per_sec,
                super::text::us(p.latency_us.p99),
                p.errors_total,
                p.fairness.connections_without_service
            ),
        };
        let _ = writeln!(s, "{line}");
    }
    s
}

/// The Markdown table of the results.
pub fn markdown(r: &BenchResults) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# spindle bench {}\n", r.suite);
    let _ = writeln!(s, "Command: `{}`\n", r.command);
    let _ = writeln!(
        s,
        "{} CPUs, loopback; each point {:.1} s measured after {:.1} s warmup, {}. \
         Latency in microseconds. Server figures from /proc, summed over the \
         server and its child processes: memory and threads at their peak during the point, \
         CPU and context switches between two samples at the edges of the measured window.\n",
        r.cpus,
        r.duration_sec,
        r.warmup_sec,
        r.mode.replace('_', " ")
    );
    let _ = writeln!(
        s,
        "| model | workload | connections | open at the end | connecting at the end | requests/s | p50 (us) | p99 (us) | p99.9 (us) | errors | requests per connection min / median / max | connections without service | server RSS max (MiB) | RSS per connection (KiB) | server threads / processes | server CPU (% of a core) | server CPU per request (us) | context switches per request |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in &r.points {
        if let Some(f) = &p.failure {
            let _ = writeln!(
                s,
                "| {} | {} | {} | | | failed: {} | | | | {} | | | | | | | | |",
                p.model,
                p.workload,
                p.connections,
                f.replace('|', "/"),
                p.errors_total
            );
            continue;
        }
        let per_conn = p
            .server
            .rss_per_connection_kib
            .map_or("-".to_string(), |v| format!("{v:.1}"));
        // Idle points serve a few probes: per request means nothing there.
        let per_request = |v: Option<f64>, digits: usize| match v {
            Some(v) if p.workload != "idle" => format!("{v:.digits$}"),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} / {} / {} | {} | {:.1} | {} | {} / {} | {:.0} | {} | {} |",
            p.model,
            p.workload,
            p.connections,
            p.connections_open_at_end,
            p.connections_connecting_at_end,
            p.requests_per_sec,
            p.latency_us.p50,
            p.latency_us.p99,
            p.latency_us.p99_9,
            p.errors_total,
            p.fairness.requests_per_connection_min,
            p.fairness.requests_per_connection_median,
            p.fairness.requests_per_connection_max,
            p.fairness.connections_without_service,
            p.server.rss_max_kib as f64 / 1024.0,
            per_conn,
            p.server.threads_max,
            p.server.processes_max,
            p.server.cpu_percent,
            per_request(p.server.cpu_us_per_request, 1),
            per_request(p.server.context_switches_per_request, 3)
        );
    }
    let errors: Vec<String> = r
        .points
        .iter()
        .flat_map(|p| {
            p.errors.iter().map(move |e| {
                format!(
                    "- {} {} at {} connections: {} {} (e.g. {})",
                    p.model, p.workload, p.connections, e.count, e.kind, e.sample
                )
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nErrors:\n\n{}", errors.join("\n"));
    }
    let _ = writeln!(
        s,
        "\nRSS per connection: (RSS when the measured window began - RSS of the server \
         warmed up by one connection for {:.1} s, that connection closed) / connections \
         open at the end, as NOTES section 2 measures an open connection.\n",
        SERVER_WARMUP.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "Charts: throughput.svg, p99.svg, memory.svg (RSS per connection as above), \
         timeline.svg (requests/s per interval, every point in order)."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_and_models() {
        assert_eq!(workload_of("echo"), Ok(Workload::Echo));
        assert!(workload_of("gopher").unwrap_err().contains("gopher"));
        assert_eq!(models_of(&[]).unwrap(), Model::ALL.to_vec());
        assert_eq!(models_of(&["pool".to_string()]).unwrap(), vec![Model::Pool]);
        assert!(
            models_of(&["fork".to_string()])
                .unwrap_err()
                .contains("known: pool")
        );
    }

    #[test]
    fn port_from_the_log() {
        assert_eq!(
            port_in("2026-11-23 08:40:46+0000 [-] EchoFactory starting on 127.0.0.1:39253"),
            Some(39253)
        );
        assert_eq!(port_in("Starting factory EchoFactory"), None);
    }

    #[test]
    fn markdown_shows_points_and_failures() {
        let mut ok = failed(Model::Pool, Workload::Echo, 16, String::new());
        ok.failure = None;
        ok.ok = true;
        ok.requests_per_sec = 1234.4;
        ok.server.rss_max_kib = 2048;
        let bad = failed(
            Model::Pool,
            Workload::Idle,
            10_000,
            "the server exited | badly".into(),
        );
        let r = BenchResults {
            suite: "echo".into(),
            command: "spindle bench echo".into(),
            cpus: 2,
            duration_sec: 1.0,
            warmup_sec: 0.5,
            mode: "closed_loop".into(),
            interval_sec: 1.0,
            points: vec![ok, bad],
        };
        let md = markdown(&r);
        assert!(md.contains("| pool | echo | 16 | 0 | 0 | 1234 |"), "{md}");
        assert!(md.contains("| 2.0 |"), "{md}");
        assert!(md.contains("failed: the server exited / badly"), "{md}");
        assert!(md.contains("`spindle bench echo`"));
        let text = summary(&r);
        assert!(
            text.lines().all(|l| l.chars().count() <= SUMMARY_WIDTH),
            "{text}"
        );
        assert!(text.contains("2 CPUs"), "{text}");
        assert!(text.contains("failed: the server exited"), "{text}");
    }
}
