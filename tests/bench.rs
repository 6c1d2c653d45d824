//! `spindle bench` end to end: a tiny sweep through the real binary, which
//! serves echo in a child process, writes every output file, and reports a
//! bad suite or model as a usage error.

mod util;

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
        stderr.contains("bench: echo on pool, 4 connections echo..."),
        "progress: {stderr}"
    );
    assert!(
        stderr.contains("bench: echo on pool, 1 connection echo..."),
        "progress: {stderr}"
    );
    assert!(
        stderr.contains("bench: echo on pool, 20 connections idle..."),
        "progress: {stderr}"
    );
    // The terminal gets a short summary at 80 columns; the full table is
    // in results.md.
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout
            .lines()
            .filter(|l| !l.contains(out))
            .all(|l| l.chars().count() <= 80),
        "a line over 80 columns:\n{stdout}"
    );
    assert!(
        !stdout.contains("|---"),
        "no markdown table on stdout: {stdout}"
    );
    for needle in [
        "model",
        "connections",
        "requests/s",
        "p99",
        "errors",
        "unserved",
    ] {
        assert!(stdout.contains(needle), "{needle} in {stdout}");
    }
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("pool ")).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert!(stdout.contains("results.md"), "{stdout}");
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
    let idle = &points[2];
    assert_eq!(idle["connections_established"], 20, "{idle}");
    assert_eq!(idle["errors_total"], 0, "{idle}");
    // Memory per open connection from the warmed-up baseline, not from the
    // fresh server: one connection no longer carries the first-load growth.
    for p in points {
        let server = &p["server"];
        let warm = server["rss_warm_kib"].as_u64().unwrap();
        assert!(
            warm >= server["rss_at_start_kib"].as_u64().unwrap() / 2,
            "{p}"
        );
        assert!(server["rss_measured_kib"].as_u64().unwrap() > 0, "{p}");
        let per = server["rss_per_connection_kib"].as_f64().unwrap();
        let open = p["connections_open_at_end"].as_f64().unwrap();
        let measured = server["rss_measured_kib"].as_f64().unwrap();
        assert!(
            (per - (measured - warm as f64).max(0.0) / open).abs() < 0.01,
            "{p}"
        );
        // Every request due is accounted for at every point.
        let a = &p["accounting"];
        let n = |k: &str| a[k].as_u64().unwrap();
        assert_eq!(
            n("scheduled"),
            n("completed") + n("failed") + n("unsent"),
            "{p}"
        );
        assert!(!p["timeline"].as_array().unwrap().is_empty(), "{p}");
    }
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| pool | echo | 4 | 4 | 0 |"), "{md}");
    assert!(md.contains("| pool | idle | 20 |"), "{md}");
    for chart in ["throughput.svg", "p99.svg", "memory.svg", "timeline.svg"] {
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

#[test]
fn connection_threads_and_child_processes_are_counted() {
    // Their counters live in the connection's thread (thread model) or
    // process (process model): the window's samples must see them.
    for model in ["thread", "process"] {
        let dir =
            std::env::temp_dir().join(format!("spindle-bench-test-{model}-{}", std::process::id()));
        let run = spindle_bench(&[
            "echo",
            "--model",
            model,
            "--connections",
            "4",
            "--idle",
            "0",
            "-d",
            "500ms",
            "--warmup",
            "500ms",
            "--out",
            dir.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(0), "{stderr}");
        let json = std::fs::read_to_string(dir.join("results.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let p = &v["points"][0];
        assert_eq!(p["ok"], true, "{p}");
        let server = &p["server"];
        // A closed-loop request wakes its blocked connection thread at
        // least once; the old figures (main thread only) were about 0.
        let switches = server["context_switches_per_request"].as_f64().unwrap();
        assert!(
            switches > 0.2,
            "{model}: {switches} switches per request: {p}"
        );
        assert!(server["cpu_us_per_request"].as_f64().unwrap() > 0.0, "{p}");
        assert!(server["sampled_sec"].as_f64().unwrap() > 0.0, "{p}");
        let (threads, processes) = (
            server["threads_max"].as_u64().unwrap(),
            server["processes_max"].as_u64().unwrap(),
        );
        if model == "process" {
            assert!(processes >= 5, "the server and 4 children: {p}");
        } else {
            assert_eq!(processes, 1, "{p}");
            assert!(threads >= 5, "4 connection threads and the acceptor: {p}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_killed_bench_takes_its_server_with_it() {
    let dir = std::env::temp_dir().join(format!("spindle-bench-kill-{}", std::process::id()));
    let mut bench = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(["bench", "echo", "--model", "pool", "--connections", "1"])
        .args(["--idle", "0", "-d", "60s", "--warmup", "0s", "--out"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spindle bench starts");
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let bench_pid = bench.id();
    assert!(
        util::wait_until(util::DEADLINE, || !children(bench_pid).is_empty()),
        "the bench started no server"
    );
    let server = children(bench_pid)[0];
    bench.kill().unwrap();
    bench.wait().unwrap();
    // Orphaned, the server is reparented; its /proc entry goes once it has
    // exited and been reaped by its new parent.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{server}/stat")).map_or(true, |s| s.contains(") Z "))
    };
    assert!(
        util::wait_until(util::DEADLINE, gone),
        "server {server} outlived the bench"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
