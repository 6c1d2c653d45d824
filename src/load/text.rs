//! The text report, for people: at most [`WIDTH`] columns, percentiles in
//! a vertical table (as wrk's `--latency` and oha print them), counts with
//! their plural forms, and the timeline as a table on request.

use std::fmt::{self, Write as _};

use super::latency::LatencySummary;
use super::report::Report;

/// The widest line of the text report.
pub const WIDTH: usize = 80;

/// Where a labelled line's value starts.
const LABEL: usize = 15;

/// `1 connection`, `2 connections`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Microseconds with a readable unit.
pub fn us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2} s", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.1} us")
    }
}

/// Bytes with a binary unit.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Words of `text` filled into lines of at most [`WIDTH`] columns, the
/// first after `first`, the rest indented by `indent` spaces.
fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            let _ = writeln!(out, "{line}");
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty || !line.ends_with(' ') && !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    let _ = writeln!(out, "{line}");
}

/// A labelled line (`  requests     ...`), wrapped.
fn labelled(out: &mut String, label: &str, text: &str) {
    wrap(out, &format!("  {label:<w$}", w = LABEL - 2), LABEL, text);
}

/// The percentile table: one column per histogram.
fn percentile_table(out: &mut String, columns: &[(&str, &LatencySummary)]) {
    let cell = 13;
    let mut head = format!("  {:<w$}", "latency", w = LABEL - 2);
    for (name, _) in columns {
        let _ = write!(head, "{name:>cell$}");
    }
    let _ = writeln!(out, "{}", head.trim_end());
    type Row = (&'static str, fn(&LatencySummary) -> f64);
    let rows: [Row; 9] = [
        ("p50", |l| l.p50),
        ("p90", |l| l.p90),
        ("p99", |l| l.p99),
        ("p99.9", |l| l.p99_9),
        ("p99.99", |l| l.p99_99),
        ("max", |l| l.max),
        ("min", |l| l.min),
        ("mean", |l| l.mean),
        ("stdev", |l| l.stdev),
    ];
    for (name, value) in rows {
        let mut line = format!("    {name:<w$}", w = LABEL - 4);
        for (_, l) in columns {
            let v = if l.count == 0 {
                "-".to_string()
            } else {
                us(value(l))
            };
            let _ = write!(line, "{v:>cell$}");
        }
        let _ = writeln!(out, "{line}");
    }
    let mut line = format!("    {:<w$}", "samples", w = LABEL - 4);
    for (_, l) in columns {
        let _ = write!(line, "{:>cell$}", l.count);
    }
    let _ = writeln!(out, "{line}");
}

impl Report {
    /// The text report; `timeline`: with the per-interval table.
    pub fn text(&self, timeline: bool) -> String {
        let mut s = String::new();
        if self.interrupted {
            let _ = writeln!(s, "INTERRUPTED (Ctrl-C): partial report");
        }
        let _ = writeln!(
            s,
            "{} load on {}: {}, {}",
            self.workload,
            self.target,
            count(self.connections as u64, "connection", "connections"),
            count(self.threads as u64, "thread", "threads"),
        );
        let _ = writeln!(
            s,
            "  {:.2} s measured, {}, warmup {:.2} s",
            self.duration_sec,
            self.mode.replace('_', " "),
            self.warmup_sec
        );
        let what = match self.workload.as_str() {
            "chat" => "lines sent",
            "idle" => "probes",
            _ => "requests",
        };
        labelled(
            &mut s,
            what,
            &format!("{} ({:.1}/s)", self.requests, self.requests_per_sec),
        );
        let a = &self.accounting;
        labelled(
            &mut s,
            "accounted",
            &format!(
                "{} scheduled = {} completed + {} failed + {} unsent",
                a.scheduled, a.completed, a.failed, a.unsent
            ),
        );
        if a.unsent > 0 {
            labelled(
                &mut s,
                "unsent",
                &format!(
                    "{} connection down, {} run ended (behind schedule)",
                    a.unsent_connection_down, a.unsent_run_ended
                ),
            );
        }
        let mut columns: Vec<(&str, &LatencySummary)> = Vec::new();
        match &self.open_loop {
            Some(o) => {
                labelled(
                    &mut s,
                    "rate",
                    &format!(
                        "requested {:.1}/s, achieved {:.1}/s",
                        o.requested_rate_per_sec, o.achieved_rate_per_sec
                    ),
                );
                columns.push(("corrected", &o.corrected_latency_us));
                columns.push(("uncorrected", &o.uncorrected_latency_us));
            }
            None => columns.push((
                if self.mode == "idle" {
                    "probe"
                } else {
                    "request"
                },
                &self.latency_us,
            )),
        }
        if let Some(c) = &self.chat {
            columns.push(("delivery", &c.delivery_latency_us));
        }
        columns.push(("connect", &self.connect_latency_us));
        percentile_table(&mut s, &columns);
        if let Some(c) = &self.chat {
            labelled(
                &mut s,
                "delivered",
                &format!(
                    "{} ({:.1} lines/s) from {}",
                    count(c.lines_delivered, "line", "lines"),
                    c.lines_delivered_per_sec,
                    count(c.senders as u64, "sender", "senders")
                ),
            );
        }
        labelled(
            &mut s,
            "connections",
            &format!(
                "{} established; at the end {} open, {} still connecting",
                self.connections_established,
                self.connections_open_at_end,
                self.connections_connecting_at_end
            ),
        );
        if let Some(i) = &self.idle {
            labelled(
                &mut s,
                "idle",
                &format!(
                    "{} established, {} refused, {} reset, {} timed out, \
                     {} closed by the server; at the end {} held, {} still connecting",
                    i.established,
                    i.refused,
                    i.reset,
                    i.timed_out,
                    i.closed,
                    i.held_at_end,
                    i.connecting_at_end
                ),
            );
        }
        labelled(
            &mut s,
            "bytes",
            &format!(
                "sent {} ({}/s), received {} ({}/s)",
                bytes(self.sent_bytes as f64),
                bytes(self.sent_bytes_per_sec),
                bytes(self.received_bytes as f64),
                bytes(self.received_bytes_per_sec)
            ),
        );
        let fr = &self.fairness;
        if fr.connections > 0 {
            let none = match fr.connections_without_service {
                0 => "every connection got some".to_string(),
                n => format!(
                    "{n} of {} got none",
                    count(fr.connections, "connection", "connections")
                ),
            };
            labelled(
                &mut s,
                "fairness",
                &format!(
                    "{what} per connection: min {}, median {}, max {}",
                    fr.requests_per_connection_min,
                    fr.requests_per_connection_median,
                    fr.requests_per_connection_max,
                ),
            );
            labelled(&mut s, "", &none);
        }
        if self.errors.is_empty() {
            labelled(&mut s, "errors", "none");
        } else {
            labelled(
                &mut s,
                "errors",
                &format!("{} in all (warmup included)", self.errors_total),
            );
            for e in &self.errors {
                let errnos: Vec<String> = e
                    .by_errno
                    .iter()
                    .map(|c| format!("{} {}", c.errno, c.count))
                    .collect();
                let row = format!(
                    "    {:<11}{:>9}  {}",
                    e.kind.name(),
                    e.count,
                    errnos.join(", ")
                );
                let _ = writeln!(s, "{}", row.trim_end());
                wrap(&mut s, "      e.g.", 11, &e.sample);
            }
        }
        if !self.steps.is_empty() {
            self.steps_table(&mut s);
        }
        for w in &self.warnings {
            wrap(&mut s, "  warning:", 4, w);
        }
        if timeline {
            self.timeline_table(&mut s);
        }
        s
    }

    /// The rate plan's steps, one line each (corrected latency).
    fn steps_table(&self, s: &mut String) {
        let _ = writeln!(s, "  steps (corrected latency)");
        let _ = writeln!(
            s,
            "  {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7}",
            "rate/s", "achieved/s", "p50", "p99", "max", "failed", "unsent"
        );
        for st in &self.steps {
            let l = &st.corrected_latency_us;
            let cell = |v: f64| if l.count == 0 { "-".to_string() } else { us(v) };
            let _ = writeln!(
                s,
                "  {:>10.1} {:>10.1} {:>10} {:>10} {:>10} {:>7} {:>7}",
                st.requested_rate_per_sec,
                st.achieved_rate_per_sec,
                cell(l.p50),
                cell(l.p99),
                cell(l.max),
                st.accounting.failed,
                st.accounting.unsent
            );
        }
    }

    /// The per-interval table (`--timeline`).
    fn timeline_table(&self, s: &mut String) {
        let latency = if self.open_loop.is_some() {
            "corrected latency"
        } else {
            "latency"
        };
        let _ = writeln!(
            s,
            "  timeline (every {:.3} s; {latency})",
            self.interval_sec
        );
        let _ = writeln!(
            s,
            "  {:>9} {:>9} {:>7} {:>10} {:>10} {:>10}  errors",
            "from s", "requests", "failed", "p50", "p99", "max"
        );
        for i in &self.timeline {
            let errors: Vec<String> = i.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let l = &i.latency_us;
            let cell = |v: f64| {
                if i.requests == 0 {
                    "-".to_string()
                } else {
                    us(v)
                }
            };
            let line = format!(
                "  {:>9.3} {:>9} {:>7} {:>10} {:>10} {:>10}  ",
                i.start_sec,
                i.requests,
                i.failed,
                cell(l.p50),
                cell(l.p99),
                cell(l.max),
            );
            // The error kinds fill the last column; more than fit in 80
            // columns go on to lines of their own, under it.
            let indent = line.chars().count();
            let mut rows = vec![String::new()];
            for e in &errors {
                let row = rows.last_mut().expect("rows starts non-empty");
                if row.is_empty() {
                    row.push_str(e);
                } else if indent + row.len() + 2 + e.len() <= WIDTH {
                    row.push_str(", ");
                    row.push_str(e);
                } else {
                    row.push(',');
                    rows.push(e.clone());
                }
            }
            for (n, row) in rows.iter().enumerate() {
                let lead = if n == 0 {
                    line.clone()
                } else {
                    " ".repeat(indent)
                };
                let _ = writeln!(s, "{}", format!("{lead}{row}").trim_end());
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_and_wrapping() {
        assert_eq!(count(1, "sender", "senders"), "1 sender");
        assert_eq!(count(0, "sender", "senders"), "0 senders");
        let mut out = String::new();
        let long = "word ".repeat(40);
        wrap(&mut out, "  warning:", 4, &long);
        assert!(out.lines().count() > 1);
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("    word")));
    }

    #[test]
    fn units() {
        assert_eq!(us(12.34), "12.3 us");
        assert_eq!(us(1234.0), "1.23 ms");
        assert_eq!(us(2_500_000.0), "2.50 s");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(2048.0), "2.0 KiB");
    }
}
