//! `spindle bench` end to end: a tiny sweep through the real binary, which
//! serves echo in a child process, writes every output file, and reports a
//! bad suite or model as a usage error.

use std::process::Command;

fn spindle_bench(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_spindle"))
        .arg("bench")
        .args(args)
        .output()
        .expect("spindle runs")
}

#[test]
fn a_tiny_echo_sweep_writes_json_markdown_and_charts() {
    let dir = std::env::temp_dir().join(format!("spindle-bench-test-{}", std::process::id()));
    let out = dir.to_str().unwrap();
    let run = spindle_bench(&[
        "echo",
        "--model",
        "pool",
        "--connections",
        "1,4",
        "--idle",
        "20",
        "-d",
        "300ms",
        "--warmup",
        "0s",
        "--out",
        out,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("bench: echo echo on pool, 4 connections"),
        "progress: {stderr}"
    );
    let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 3, "{v}");
    for (p, (workload, connections)) in points.iter().zip([("echo", 1), ("echo", 4), ("idle", 20)])
    {
        assert_eq!(p["model"], "pool");
        assert_eq!(p["workload"], workload);
        assert_eq!(p["connections"], connections);
        assert_eq!(p["ok"], true, "{p}");
        assert!(p["requests_per_sec"].as_f64().unwrap() > 0.0, "{p}");
        assert!(p["server"]["rss_max_kib"].as_u64().unwrap() > 0, "{p}");
        assert!(p["server"]["threads_max"].as_u64().unwrap() > 1, "{p}");
        assert!(p["latency_us"]["p99"].is_number());
    }
    assert_eq!(points[2]["connections_open_at_end"], 20);
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| pool | echo | 4 |"), "{md}");
    assert!(md.contains("| pool | idle | 20 |"), "{md}");
    for chart in ["throughput.svg", "p99.svg", "memory.svg"] {
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("pool"), "{chart}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_suite_or_model_is_a_usage_error() {
    let run = spindle_bench(&["gopher"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("gopher"));
    let run = spindle_bench(&["echo", "--model", "fork"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("known: pool"));
}
