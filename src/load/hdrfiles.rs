//! HdrHistogram's standard files, so that the tools people already have
//! read a run:
//!
//! * `--hlog FILE`: the interval log (`HistogramLogProcessor`, jHiccup's and
//!   HdrHistogram's plotters, the PyPI `hdrhistogram` package): one
//!   compressed, base64 histogram per timeline interval, values in
//!   nanoseconds, timestamps from the measured window's start (`BaseTime`),
//!   the max column in milliseconds.
//! * `--hgrm FILE`: the percentile distribution wrk2 prints (`Value
//!   Percentile TotalCount 1/(1-Percentile)`, values in milliseconds), which
//!   HdrHistogram's online plotter accepts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

use super::report::Report;

/// Nanoseconds per millisecond: the unit of the `.hgrm` values and of the
/// interval log's max column.
const NS_PER_MS: f64 = 1e6;

/// Percentile steps per halving of the distance to 100% in `.hgrm` (as
/// wrk2 and HdrHistogram's `outputPercentileDistribution` use).
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Writes the interval log of `report` to `path`.
pub fn write_hlog(path: &Path, report: &Report) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let mut buf = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(report.measured_from_unix_sec);
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "spindle load {} on {}: {} connections, {}; values in nanoseconds{}",
                report.workload,
                report.target,
                report.connections,
                report.mode.replace('_', " "),
                if report.open_loop.is_some() {
                    ", from the intended send time"
                } else {
                    ""
                }
            ))
            .with_start_time(base)
            .with_base_time(base)
            .with_max_value_divisor(NS_PER_MS)
            .begin_log_with(&mut buf, &mut serializer)
            .map_err(|x| e(&x))?;
        log.write_comment(
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"",
        )
        .map_err(|x| e(&x))?;
        for (start, len, bucket) in report.histograms.timeline.intervals() {
            if start.as_secs_f64() >= report.duration_sec && !start.is_zero() {
                break;
            }
            log.write_histogram(&bucket.latency, start, len, None)
                .map_err(|x| e(&format!("{x:?}")))?;
        }
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&buf))
        .map_err(|x| e(&x))
}

/// The percentile distribution of `report`'s latency, as wrk2 prints it.
pub fn hgrm(report: &Report) -> String {
    let h = report.histograms.latency.histogram();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / NS_PER_MS;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let mean = if h.is_empty() { 0.0 } else { h.mean() };
    let stdev = if h.is_empty() { 0.0 } else { h.stdev() };
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        mean / NS_PER_MS,
        stdev / NS_PER_MS
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / NS_PER_MS,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    s
}

/// HdrHistogram's sub-bucket count for `sigfig` digits: the smallest
/// power of two of at least `2 * 10^sigfig`.
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// Writes [`hgrm`] to `path`.
pub fn write_hgrm(path: &Path, report: &Report) -> Result<(), String> {
    std::fs::write(path, hgrm(report)).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::load::{LoadConfig, Stats, Workload};

    #[test]
    fn the_distribution_ends_at_the_max_with_every_sample() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let config = LoadConfig::new(Workload::Echo, addr);
        let mut stats = Stats::default();
        for us in 1..=1000u64 {
            stats.latency.record(us * 1000);
        }
        let r = Report::new(&config, &stats, 1.0);
        let text = hgrm(&r);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.trim_start().starts_with('V'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let last = rows.last().unwrap();
        assert_eq!(last.len(), 3, "{text}");
        assert_eq!(last[2], "1000");
        let max: f64 = last[0].parse().unwrap();
        assert!((max - 1.0).abs() < 0.002, "{text}");
        // The median row: about 0.5 ms at 50%.
        let mid = rows
            .iter()
            .find(|r| r[1].parse::<f64>().unwrap() >= 0.5)
            .unwrap();
        let v: f64 = mid[0].parse().unwrap();
        assert!((v - 0.5).abs() < 0.002, "{text}");
        assert!(text.contains("Total count    =         1000"), "{text}");
    }
}
