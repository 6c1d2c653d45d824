//! The command-line arguments of `spindle load` and `spindle bench`
//! (clap), kept here so that `bin/spindle.rs` only wires them.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::config::{self, LoadConfig, Probe, Workload};
use crate::duration::parse_duration;

/// `spindle load WORKLOAD --target HOST:PORT`, or `spindle load merge
/// A.json B.json ...`.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LoadArgs {
    /// `merge`: one report from several loaders' JSON reports.
    #[command(subcommand)]
    pub command: Option<LoadCommand>,

    /// What each connection does.
    #[arg(value_enum, required = true)]
    pub workload: Option<WorkloadArg>,

    /// The server, as HOST:PORT (e.g. 127.0.0.1:1234).
    #[arg(long, short = 't', value_name = "HOST:PORT", required = true)]
    pub target: Option<String>,

    /// Begin at this time (seconds since the Unix epoch, fractions
    /// allowed), so that several loaders start together; at most an hour
    /// ahead.
    #[arg(long, value_name = "UNIX_TIME")]
    pub start_at: Option<f64>,

    /// A rate plan with --rate A..B: this many constant-rate steps from A
    /// to B, on the same connections.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,

    /// How long each step of a rate plan (or each --find-max-rate probe)
    /// lasts.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub step_duration: Duration,

    /// Search for the highest rate that meets --slo (from --rate, default
    /// 1000/s: doubling, then bisection).
    #[arg(long, requires = "slo")]
    pub find_max_rate: bool,

    /// The latency target of --find-max-rate: pXX=DURATION (p99=10ms).
    #[arg(long, value_parser = super::search::parse_slo, value_name = "pXX=DURATION")]
    pub slo: Option<super::search::Slo>,

    /// The most probes --find-max-rate runs.
    #[arg(long, default_value_t = super::search::DEFAULT_MAX_STEPS, value_name = "N")]
    pub max_steps: usize,

    /// Connections, duration, rate and the workloads' settings.
    #[command(flatten)]
    pub shape: ShapeArgs,

    /// Print the report as JSON (units in field names) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Add the per-interval table to the text report (the JSON always has
    /// the timeline).
    #[arg(long)]
    pub timeline: bool,

    /// Write HdrHistogram's interval log (one histogram per --interval),
    /// for HistogramLogProcessor and the hdrhistogram tools.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<std::path::PathBuf>,

    /// Write the percentile distribution (.hgrm, as wrk2 prints it), for
    /// HdrHistogram's plotter.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<std::path::PathBuf>,
}

/// What `spindle load` does besides a run.
#[derive(Subcommand, Debug, Clone)]
pub enum LoadCommand {
    /// Merge the JSON reports (`--json`) of loaders that ran at the same
    /// time into one report: histograms added, counts and rates summed,
    /// timelines aligned on wall-clock time.
    Merge(MergeArgs),
}

/// `spindle load merge A.json B.json ...`.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The reports, as `spindle load --json` wrote them.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<std::path::PathBuf>,

    /// Print the merged report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Add the per-interval table to the text report.
    #[arg(long)]
    pub timeline: bool,
}

/// The settings `spindle load` and `spindle bench` share.
#[derive(Args, Debug, Clone)]
pub struct ShapeArgs {
    /// Connections held open.
    #[arg(long, short = 'c', default_value_t = 64, value_name = "N")]
    pub connections: usize,

    /// Measured run time (e.g. 10s, 500ms).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,

    /// Run this long before measuring (requests in it are not counted).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,

    /// Event-loop threads the connections are spread over.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,

    /// Open loop: send this many requests/s across all connections, and
    /// measure latency from each request's intended send time. Closed loop
    /// (each connection sends when its last reply arrived) without it.
    /// A..B with --steps: a rate plan.
    #[arg(long, value_parser = parse_rate, value_name = "REQUESTS_PER_SEC")]
    pub rate: Option<RateArg>,

    /// New connections per second while ramping up (0: all at once).
    #[arg(long, default_value_t = config::DEFAULT_CONNECT_RATE, value_name = "CONNECTIONS_PER_SEC")]
    pub connect_rate: f64,

    /// Connect and response timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,

    /// The timeline's interval (JSON `timeline`, --timeline, --hlog).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,

    /// echo: message size; chat: line size (bytes).
    #[arg(long, default_value_t = super::echo::DEFAULT_SIZE, value_name = "BYTES")]
    pub size: usize,

    /// http: the path to GET.
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub path: String,

    /// http: one request per connection (`Connection: close`).
    #[arg(long)]
    pub no_keepalive: bool,

    /// chat: how many of the connections send lines.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub senders: usize,

    /// idle: probe latency on a few connections with echo or http requests.
    #[arg(long, value_enum, value_name = "KIND")]
    pub probe: Option<ProbeArg>,

    /// idle: how many connections probe (with --probe).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub probes: usize,

    /// idle: time between two probes of one connection.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub probe_interval: Duration,
}

/// `--rate R`, or `--rate A..B` for a rate plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateArg {
    /// The rate, or the plan's first.
    pub from: f64,
    /// The plan's last rate.
    pub to: Option<f64>,
}

/// Parses `20000` or `1000..20000`.
pub fn parse_rate(text: &str) -> Result<RateArg, String> {
    let number = |t: &str| -> Result<f64, String> {
        let r: f64 = t
            .trim()
            .parse()
            .map_err(|_| format!("{t:?} is not a number of requests/s"))?;
        if r.is_finite() && r > 0.0 {
            Ok(r)
        } else {
            Err(format!("a rate must be positive, not {t}"))
        }
    };
    match text.split_once("..") {
        Some((a, b)) => Ok(RateArg {
            from: number(a)?,
            to: Some(number(b)?),
        }),
        None => Ok(RateArg {
            from: number(text)?,
            to: None,
        }),
    }
}

/// The rates of `steps` constant-rate steps from `from` to `to`, evenly
/// spaced.
pub fn plan(from: f64, to: f64, steps: usize) -> Vec<f64> {
    match steps {
        0 => Vec::new(),
        1 => vec![from],
        n => (0..n)
            .map(|i| from + (to - from) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// The default number of steps of `--rate A..B`.
pub const DEFAULT_STEPS: usize = 5;

/// The workloads, on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WorkloadArg {
    /// Send --size bytes, wait for the whole echo, repeat.
    Echo,
    /// GET over keep-alive connections (--no-keepalive: one per connection).
    Http,
    /// Chat room: --senders send lines; delivered lines/s and latency.
    Chat,
    /// Open and hold connections; --probe a few of them.
    Idle,
}

impl From<WorkloadArg> for Workload {
    fn from(w: WorkloadArg) -> Workload {
        match w {
            WorkloadArg::Echo => Workload::Echo,
            WorkloadArg::Http => Workload::Http,
            WorkloadArg::Chat => Workload::Chat,
            WorkloadArg::Idle => Workload::Idle,
        }
    }
}

/// What idle probes send.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProbeArg {
    /// An echo message.
    Echo,
    /// An HTTP GET.
    Http,
}

/// Resolves `HOST:PORT` to the first address it names.
pub fn resolve(target: &str) -> Result<SocketAddr, String> {
    target
        .to_socket_addrs()
        .map_err(|e| format!("--target {target:?}: {e} (expected HOST:PORT)"))?
        .next()
        .ok_or_else(|| format!("--target {target:?} names no address"))
}

impl ShapeArgs {
    /// The run these settings describe, against `target` (`host` as typed).
    pub fn config(&self, workload: Workload, target: SocketAddr, host: &str) -> LoadConfig {
        let mut c = LoadConfig::new(workload, target);
        c.host = host.to_string();
        c.connections = self.connections;
        c.threads = self.threads;
        c.duration = self.duration;
        c.warmup = self.warmup;
        c.rate = self.rate.map(|r| r.from);
        c.connect_rate = (self.connect_rate > 0.0).then_some(self.connect_rate);
        c.timeout = self.timeout;
        c.interval = self.interval;
        c.size = self.size;
        c.path = self.path.clone();
        c.keepalive = !self.no_keepalive;
        c.senders = self.senders;
        c.probe = self.probe.map(|p| match p {
            ProbeArg::Echo => Probe::Echo,
            ProbeArg::Http => Probe::Http,
        });
        c.probes = if c.probe.is_some() {
            self.probes.min(c.connections)
        } else {
            0
        };
        c.probe_interval = self.probe_interval;
        c
    }
}

impl LoadArgs {
    /// The run asked for; the progress line shows only on a terminal.
    pub fn config(&self) -> Result<LoadConfig, String> {
        let (Some(workload), Some(target)) = (self.workload, self.target.as_deref()) else {
            return Err("a WORKLOAD and --target HOST:PORT are required".into());
        };
        let addr = resolve(target)?;
        let mut c = self.shape.config(workload.into(), addr, target);
        c.progress = std::io::stderr().is_terminal();
        c.start_at = match self.start_at {
            Some(t) if !(t.is_finite() && t >= 0.0) => {
                return Err(format!(
                    "--start-at must be a Unix time in seconds, not {t}"
                ));
            }
            Some(t) => Some(std::time::UNIX_EPOCH + Duration::from_secs_f64(t)),
            None => None,
        };
        match (self.shape.rate.and_then(|r| r.to), self.steps) {
            (Some(to), steps) => {
                let n = steps.unwrap_or(DEFAULT_STEPS);
                if n == 0 || n > config::MAX_STEPS {
                    return Err(format!("--steps must be 1 to {}", config::MAX_STEPS));
                }
                if self.find_max_rate {
                    return Err("--find-max-rate takes one starting --rate, not A..B".into());
                }
                c.steps = plan(c.rate.unwrap_or(to), to, n);
                c.step_duration = self.step_duration;
                c.duration = self.step_duration * n as u32;
            }
            (None, Some(_)) => return Err("--steps needs --rate A..B".into()),
            (None, None) => {}
        }
        c.validate()?;
        Ok(c)
    }
}

/// `spindle bench SUITE`: serve, sweep connection counts, write results.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The suite: the protocol served and the matching workload (echo,
    /// http or chat, where this build serves it).
    pub suite: String,

    /// A concurrency model to measure; repeat for several (default: every
    /// model this build has).
    #[arg(long = "model", value_name = "MODEL")]
    pub models: Vec<String>,

    /// Connection counts to sweep, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,16,64,256,1024",
        value_name = "N,N,..."
    )]
    pub connections: Vec<usize>,

    /// A final point holding this many idle connections (probed with the
    /// suite's requests) to measure memory per connection; 0 skips it.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub idle: usize,

    /// Measured time per point.
    #[arg(long, short = 'd', default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,

    /// Warmup per point (the idle point adds its connection ramp).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,

    /// Load-generator threads.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,

    /// Open loop at this many requests/s (closed loop without it).
    #[arg(long, value_name = "REQUESTS_PER_SEC")]
    pub rate: Option<f64>,

    /// New connections per second while ramping up.
    #[arg(long, default_value_t = config::DEFAULT_CONNECT_RATE, value_name = "CONNECTIONS_PER_SEC")]
    pub connect_rate: f64,

    /// The timeline's interval (timeline.svg, results.json).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,

    /// Where to write results.json, results.md and the SVG charts.
    #[arg(long, default_value = "bench-results", value_name = "DIR")]
    pub out: std::path::PathBuf,

    /// An extra argument for `spindle serve` (repeat; e.g.
    /// `--serve-arg=--workers=1024`).
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}
