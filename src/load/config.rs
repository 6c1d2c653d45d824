//! What one load run is asked to do, independent of the command line.

use std::net::SocketAddr;
use std::time::Duration;

/// The default run length.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// How long a connection attempt or a response may take before it counts
/// as a timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections opened per second by default: fast, but slow enough that
/// a listen backlog of a few hundred is not overrun by a 10,000-connection
/// ramp.
pub const DEFAULT_CONNECT_RATE: f64 = 5000.0;

/// After a failed connection, how long before the slot reconnects (so a
/// refusing server is not hammered in a busy loop).
pub const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// How far ahead `--start-at` may be: a guard against a typo that would
/// leave the loader waiting for days.
pub const MAX_START_AT_AHEAD: Duration = Duration::from_secs(3600);

/// The most steps a rate plan may have.
pub const MAX_STEPS: usize = 100;

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Send a message, wait for its echo, repeat.
    Echo,
    /// `GET` over keep-alive connections (or one per connection).
    Http,
    /// Join a chat room; senders send lines, everyone counts deliveries.
    Chat,
    /// Open and hold connections; optionally probe a few of them.
    Idle,
}

impl Workload {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Echo => "echo",
            Workload::Http => "http",
            Workload::Chat => "chat",
            Workload::Idle => "idle",
        }
    }
}

/// What the probes of an idle run send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// An echo message.
    Echo,
    /// An HTTP `GET`.
    Http,
}

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// What each connection does.
    pub workload: Workload,
    /// Where to connect.
    pub target: SocketAddr,
    /// The target as the user wrote it (the HTTP `Host` header).
    pub host: String,
    /// Connections held open.
    pub connections: usize,
    /// Event-loop threads the connections are spread over.
    pub threads: usize,
    /// The measured part of the run.
    pub duration: Duration,
    /// Run before measuring; requests in it are not counted.
    pub warmup: Duration,
    /// Open loop: requests/s across all connections (`None`: closed loop).
    pub rate: Option<f64>,
    /// Connections opened per second (`None`: all at once).
    pub connect_rate: Option<f64>,
    /// Connect and response timeout.
    pub timeout: Duration,
    /// Echo message and chat line size, in bytes.
    pub size: usize,
    /// HTTP: the path requested.
    pub path: String,
    /// HTTP: keep connections alive between requests.
    pub keepalive: bool,
    /// Chat: how many connections send lines.
    pub senders: usize,
    /// Idle: what the probe connections send (`None`: no probes).
    pub probe: Option<Probe>,
    /// Idle: how many connections probe.
    pub probes: usize,
    /// Idle: time between two probes of one connection.
    pub probe_interval: Duration,
    /// Print a live progress line on stderr.
    pub progress: bool,
    /// The timeline's interval.
    pub interval: Duration,
    /// Begin at this wall-clock time (`--start-at`), not at once.
    pub start_at: Option<std::time::SystemTime>,
    /// A rate plan: one constant rate per step, each `step_duration` long,
    /// on the same connections (empty: one rate, `rate`). The warmup runs
    /// at the first step's rate; `duration` is the steps' total.
    pub steps: Vec<f64>,
    /// How long each step of `steps` lasts.
    pub step_duration: Duration,
}

impl LoadConfig {
    /// A closed-loop echo run with every other setting at its default.
    pub fn new(workload: Workload, target: SocketAddr) -> Self {
        LoadConfig {
            workload,
            target,
            host: target.to_string(),
            connections: 1,
            threads: 1,
            duration: DEFAULT_DURATION,
            warmup: Duration::ZERO,
            rate: None,
            connect_rate: Some(DEFAULT_CONNECT_RATE),
            timeout: DEFAULT_TIMEOUT,
            size: super::echo::DEFAULT_SIZE,
            path: "/".to_string(),
            keepalive: true,
            senders: 1,
            probe: None,
            probes: 0,
            probe_interval: Duration::from_secs(1),
            progress: false,
            interval: super::timeline::DEFAULT_INTERVAL,
            start_at: None,
            steps: Vec::new(),
            step_duration: Duration::from_secs(5),
        }
    }

    /// Checks the settings, naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be more than 0".into());
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(format!(
                "--rate must be a positive number of requests/s, not {r}"
            ));
        }
        if let Some(at) = self.start_at {
            let now = std::time::SystemTime::now();
            if at < now {
                let late = now.duration_since(at).unwrap_or_default();
                return Err(format!(
                    "--start-at is {:.3} s in the past: give every loader a time ahead",
                    late.as_secs_f64()
                ));
            }
            if at.duration_since(now).unwrap_or_default() > MAX_START_AT_AHEAD {
                return Err(format!(
                    "--start-at is more than {} s ahead",
                    MAX_START_AT_AHEAD.as_secs()
                ));
            }
        }
        if !self.steps.is_empty() {
            if self.workload == Workload::Idle {
                return Err("idle probes keep their own schedule: no --steps".into());
            }
            if self.step_duration.is_zero() {
                return Err("--step-duration must be more than 0".into());
            }
            if self.steps.len() > MAX_STEPS {
                return Err(format!("at most {MAX_STEPS} --steps"));
            }
            if let Some(r) = self.steps.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
                return Err(format!("every step's rate must be positive, not {r}"));
            }
        }
        if self.interval.is_zero() {
            return Err("--interval must be more than 0".into());
        }
        let intervals = super::timeline::Timeline::intervals_in(self.duration, self.interval);
        if intervals > super::timeline::MAX_INTERVALS {
            return Err(format!(
                "--interval {:?} cuts --duration {:?} into {intervals} intervals, more than the {} allowed: use a longer --interval",
                self.interval,
                self.duration,
                super::timeline::MAX_INTERVALS
            ));
        }
        if self.size == 0 {
            return Err("--size must be at least 1 byte".into());
        }
        if self.workload == Workload::Chat && self.senders > self.connections {
            return Err(format!(
                "--senders ({}) cannot exceed --connections ({})",
                self.senders, self.connections
            ));
        }
        if self.workload == Workload::Idle && self.probes > self.connections {
            return Err(format!(
                "--probes ({}) cannot exceed --connections ({})",
                self.probes, self.connections
            ));
        }
        if !self.path.starts_with('/')
            || self
                .path
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!(
                "--path must start with / and hold no spaces: {:?}",
                self.path
            ));
        }
        Ok(())
    }

    /// Whether the requests of connection `conn` follow the open-loop
    /// schedule, and at what rate across the connections that send.
    pub fn open_loop(&self) -> Option<(f64, usize)> {
        match self.workload {
            Workload::Idle => {
                let probes = self.probes.max(1);
                Some((
                    probes as f64 / self.probe_interval.as_secs_f64().max(1e-6),
                    probes,
                ))
            }
            Workload::Chat => self.rate.map(|r| (r, self.senders.max(1))),
            _ => self.rate.map(|r| (r, self.connections)),
        }
    }

    /// Whether a slot reconnects after an error (idle connections are
    /// counted, not replaced).
    pub fn reconnects(&self) -> bool {
        self.workload != Workload::Idle
    }
}
