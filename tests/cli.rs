//! End to end: the real `spindle` binary, driven the way a user would, with
//! netcat and signals.

mod util;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use spindle::Endpoint;

use util::{DEADLINE, Spindle, connect, read_to_end, rss_kib, send, sh, thread_count, wait_until};

const LOOPBACK_ANY: &str = "tcp:0:interface=127.0.0.1";

fn serve(protocol: &str, extra: &[&str]) -> Spindle {
    let mut args = vec!["serve", protocol, "--listen", LOOPBACK_ANY];
    args.extend_from_slice(extra);
    Spindle::start(&args)
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(args)
        .output()
        .expect("spindle runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn echo_through_netcat() {
    let s = serve("echo", &[]);
    let port = s.port_of("EchoFactory");
    let out = sh(&format!(
        "printf 'hello\\nworld\\n' | nc -N 127.0.0.1 {port}"
    ));
    assert_eq!(out, "hello\nworld\n");
}

#[test]
fn qotd_through_netcat_with_a_quotes_file() {
    let dir = std::env::temp_dir().join(format!("spindle-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let quotes = dir.join("quotes.txt");
    std::fs::write(&quotes, "first quote\n\nsecond quote\n").unwrap();
    let s = serve("qotd", &["--quotes", quotes.to_str().unwrap()]);
    let port = s.port_of("QOTDFactory");
    let one = sh(&format!("nc 127.0.0.1 {port} </dev/null"));
    let two = sh(&format!("nc 127.0.0.1 {port} </dev/null"));
    assert_eq!(one, "first quote\r\n");
    assert_eq!(two, "second quote\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn welcome_counts_open_connections() {
    let s = serve("welcome", &[]);
    let port = s.port_of("WelcomeFactory");
    let mut a = connect(port);
    let mut line = [0u8; 49];
    std::io::Read::read_exact(&mut a, &mut line).unwrap();
    assert_eq!(
        &line[..],
        b"welcome! there are currently 1 open connections.\n"
    );
    let out = sh(&format!("printf 'hi\\n' | nc -N 127.0.0.1 {port}"));
    assert_eq!(
        out,
        "welcome! there are currently 2 open connections.\nhi\n"
    );
    drop(a);
    // The count falls in connection_lost, after the client saw EOF: poll.
    assert!(wait_until(DEADLINE, || {
        sh(&format!("nc -N 127.0.0.1 {port} </dev/null")).contains("currently 1 open")
    }));
}

#[test]
fn serve_all_serves_every_protocol_and_exits_0_on_sigint() {
    // Every default port shifted to a free range, so that a developer's own
    // `serve all` does not collide with the test.
    let ports: Vec<u16> = spindle::catalog::NAMES
        .iter()
        .filter_map(
            |name| match Endpoint::parse(spindle::catalog::default_endpoint(name)?) {
                Ok(Endpoint::Tcp { port, .. }) => Some(port),
                _ => None,
            },
        )
        .collect();
    let offset = (20_000..40_000u16)
        .step_by(97)
        .find(|o| {
            ports
                .iter()
                .all(|p| TcpListener::bind(("0.0.0.0", p + o)).is_ok())
        })
        .expect("a free port range");
    let mut s = Spindle::start(&["serve", "all", "--port-offset", &offset.to_string()]);
    assert_eq!(s.port_of("EchoFactory"), 1234 + offset);
    assert_eq!(s.port_of("QOTDFactory"), 8007 + offset);
    assert_eq!(s.port_of("WelcomeFactory"), 1235 + offset);
    assert_eq!(s.port_of("NetstringEchoFactory"), 1237 + offset);
    assert_eq!(s.port_of("Int32EchoFactory"), 1238 + offset);
    assert_eq!(
        sh(&format!(
            "printf '2:hi,' | nc -N 127.0.0.1 {}",
            1237 + offset
        )),
        "2:hi,"
    );
    assert_eq!(s.port_of("Site"), 8080 + offset);
    assert_eq!(
        sh(&format!(
            "printf 'ping\\n' | nc -N 127.0.0.1 {}",
            1234 + offset
        )),
        "ping\n"
    );
    assert!(sh(&format!("nc 127.0.0.1 {} </dev/null", 8007 + offset)).ends_with("\r\n"));
    assert!(sh(&format!("nc -N 127.0.0.1 {} </dev/null", 1235 + offset)).starts_with("welcome!"));
    assert_eq!(
        sh(&format!(
            "curl -s --max-time 10 http://127.0.0.1:{}/",
            8080 + offset
        )),
        "I am request #1\n"
    );
    // An idle client must not hold the shutdown up.
    let mut idle = connect(1234 + offset);
    send(&mut idle, b"here");
    assert_eq!(util::read_n(&mut idle, 4), b"here");
    s.signal(libc::SIGINT);
    assert_eq!(s.wait_exit(DEADLINE), Some(0), "log:\n{}", s.log());
    assert_eq!(read_to_end(&mut idle), b"");
    let log = s.log();
    for needle in [
        "[-] Starting factory EchoFactory",
        "Stopping factory WelcomeFactory",
        &format!("(TCP Port {} Closed)", 8007 + offset),
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }
}

#[test]
fn sigterm_stops_gracefully_and_logs_in_twisted_format() {
    let mut s = serve("echo", &[]);
    let port = s.port_of("EchoFactory");
    let mut c = connect(port);
    send(&mut c, b"x");
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut c, &mut b).unwrap();
    drop(c);
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE), Some(0));
    let log = s.log();
    let first = log.lines().next().unwrap();
    // 2026-11-23 08:51:48+0000 [-] echo on 127.0.0.1:PORT (the protocol as
    // named on the command line, where it listens), then Twisted's lines.
    let (stamp, rest) = first.split_at(24);
    assert!(
        stamp.len() == 24
            && stamp.as_bytes()[10] == b' '
            && (stamp.contains('+') || stamp.contains('-')),
        "timestamp {stamp:?}"
    );
    assert_eq!(rest, format!(" [-] echo on 127.0.0.1:{port}"));
    let second = log.lines().nth(1).unwrap();
    assert_eq!(&second[24..], " [-] Starting factory EchoFactory");
}

#[test]
fn a_port_in_use_is_one_line_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (code, err) = run(&[
        "serve",
        "echo",
        "--listen",
        &format!("tcp:{port}:interface=127.0.0.1"),
    ]);
    assert_eq!(code, Some(1), "{err}");
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("spindle: cannot listen on tcp:"), "{err}");
    assert!(last.contains("in use"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "gopher"], "unknown protocol \"gopher\""),
        (&["serve", "echo", "--listen", "1234"], "write tcp:1234"),
        (
            &["serve", "echo", "--listen", "tcp:99999"],
            "port \"99999\"",
        ),
        (
            &["serve", "all", "--listen", "tcp:0"],
            "--listen cannot be used",
        ),
        (
            &["serve", "echo", "--workers", "0"],
            "--workers must be at least 1",
        ),
        (&["serve", "echo", "--grace", "soon"], "not a duration"),
        // The client commands: what the command line got wrong is a usage
        // error too.
        (
            &[
                "imap-subject",
                "--endpoint",
                "bogus:x",
                "--user",
                "a",
                "--password-file",
                "/dev/null",
            ],
            "bad endpoint \"bogus:x\"",
        ),
        (
            &[
                "imap-subject",
                "--endpoint",
                "tcp:127.0.0.1:1",
                "--user",
                "a",
                "--password-file",
                "/dev/null",
                "--message",
                "0",
            ],
            "--message counts from 1",
        ),
        (&["get", "notaurl"], "bad URL \"notaurl\""),
        (&["get", "ftp://example.com/"], "only http and https"),
    ];
    for (args, needle) in cases {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn help_explains_every_serve_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--listen",
        "--model",
        "--workers",
        "--queue",
        "--max-connections",
        "--idle-timeout",
        "--write-timeout",
        "--grace",
        "--outbound-queue",
        "--quotes",
        "--max-string-length",
        "--interface",
        "--exit-wait",
    ] {
        assert!(help.contains(option), "{option} missing from serve --help");
    }
}

#[test]
fn serve_help_is_grouped_and_short_help_is_one_line_an_option() {
    let help = |flag: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
            .args(["serve", flag])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let short = help("-h");
    let long = help("--help");
    for text in [&short, &long] {
        for heading in [
            "Serving:",
            "Limits:",
            "Chat (chat):",
            "Command server (cmd):",
            "Web server (http):",
        ] {
            assert!(
                text.contains(&format!("\n{heading}\n")),
                "{heading}: {text}"
            );
        }
        assert!(text.contains("TLS: serve any protocol over TLS"), "{text}");
        // Placeholders read as their values.
        assert!(text.contains("--keepalive-cliff <release|hold>"), "{text}");
        assert!(!text.contains("<KEEPALIVE_CLIFF>") && !text.contains("<MODEL>"));
    }
    // -h: a summary line an option (Serving's long placeholders push a
    // few help texts to the next line), so it fits a screen or two.
    let options = short
        .lines()
        .filter(|l| l.trim_start().starts_with("--"))
        .count();
    assert!(short.lines().count() < options + 30, "{short}");
    assert!(short.lines().all(|l| l.chars().count() <= 180), "{short}");
}

/// CPU ticks (user + system) a process has used, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_backs_off_without_spinning_and_recovers() {
    let bin = env!("CARGO_BIN_EXE_spindle");
    let s = Spindle::start_with(Command::new("bash").args([
        "-c",
        &format!("ulimit -n 24 && exec {bin} serve echo --listen {LOOPBACK_ANY}"),
    ]));
    let port = s.port_of("EchoFactory");
    // More clients than descriptors: the extra ones wait in the backlog.
    let clients: Vec<_> = (0..40).map(|_| connect(port)).collect();
    assert!(s.wait_for_log("Too many open files"), "log:\n{}", s.log());
    let pid = s.child.id();
    let before = cpu_ticks(pid);
    let window = std::time::Instant::now();
    assert!(wait_until(Duration::from_secs(10), || window.elapsed()
        >= Duration::from_secs(1)));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "{used} CPU ticks in one second while out of descriptors: a busy loop"
    );
    drop(clients);
    // Descriptors free up: new clients are served again.
    assert!(
        wait_until(DEADLINE, || {
            sh(&format!("printf 'back\\n' | nc -N -w 2 127.0.0.1 {port}")) == "back\n"
        }),
        "log:\n{}",
        s.log()
    );
}

#[test]
fn thousands_of_connections_leave_threads_and_memory_flat() {
    let s = serve("echo", &["--workers", "8"]);
    let port = s.port_of("EchoFactory");
    let pid = s.child.id();
    let round_trip = || {
        let mut c = connect(port);
        send(&mut c, b"ping");
        let mut b = [0u8; 4];
        std::io::Read::read_exact(&mut c, &mut b).unwrap();
    };
    for _ in 0..200 {
        round_trip();
    }
    let threads_before = thread_count(pid);
    let rss_before = rss_kib(pid);
    for _ in 0..3000 {
        round_trip();
    }
    assert!(wait_until(DEADLINE, || thread_count(pid) == threads_before));
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 4096,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over 3000 connections"
    );
}

#[test]
fn a_second_sigint_exits_at_once() {
    let mut s = serve("echo", &["--grace", "60s"]);
    let port = s.port_of("EchoFactory");
    // A client that sends a lot and reads nothing keeps its owner blocked in
    // a write, so the graceful stop has to wait for the grace period.
    let mut c = connect(port);
    c.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![b'x'; 1 << 16];
    // Bounded: the socket buffers fill long before 4 GiB.
    for _ in 0..65_536 {
        if std::io::Write::write_all(&mut c, &chunk).is_err() {
            break;
        }
    }
    s.signal(libc::SIGINT);
    assert!(
        s.wait_for_log("giving them 60s to finish"),
        "log:\n{}",
        s.log()
    );
    s.signal(libc::SIGINT);
    assert_eq!(s.wait_exit(DEADLINE), Some(130), "log:\n{}", s.log());
}

/// The listen backlog a `--listen` endpoint got, from `ss` (a listener's
/// Send-Q column is its backlog).
fn listen_backlog(port: u16) -> u32 {
    let out = sh(&format!("ss -Hltn 'sport = :{port}'"));
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert!(fields.len() >= 3, "ss said {out:?}");
    fields[2].parse().expect("a Send-Q number")
}

#[test]
fn tcp_endpoints_listen_with_a_1024_backlog_unless_told() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("Linux: /proc/sys/net/core/somaxconn")
        .trim()
        .parse()
        .expect("a number");
    let s = serve("echo", &[]);
    assert_eq!(
        listen_backlog(s.port_of("EchoFactory")),
        1024.min(somaxconn)
    );
    let s = Spindle::start(&[
        "serve",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1:backlog=50",
    ]);
    assert_eq!(listen_backlog(s.port_of("EchoFactory")), 50);
}

/// A port offset under which every default port is free.
fn free_offset() -> u16 {
    let ports: Vec<u16> = spindle::catalog::NAMES
        .iter()
        .filter_map(
            |name| match Endpoint::parse(spindle::catalog::default_endpoint(name)?) {
                Ok(Endpoint::Tcp { port, .. }) => Some(port),
                _ => None,
            },
        )
        .collect();
    (20_000..40_000u16)
        .step_by(83)
        .find(|o| {
            ports
                .iter()
                .all(|p| TcpListener::bind(("0.0.0.0", p + o)).is_ok())
        })
        .expect("a free port range")
}

/// Whether a TCP connection to `ip:port` is accepted.
fn reachable(ip: &str, port: u16) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
    std::net::TcpStream::connect_timeout(&addr, DEADLINE).is_ok()
}

#[test]
fn serve_all_interface_binds_every_protocol_there_only_and_says_where() {
    // 127.0.0.2 is loopback too on Linux, so the test stays on this host
    // and can tell "bound there" from "bound everywhere".
    let offset = free_offset();
    let s = Spindle::start(&[
        "serve",
        "all",
        "--interface",
        "127.0.0.2",
        "--port-offset",
        &offset.to_string(),
    ]);
    assert!(s.wait_for_log("Site starting on "), "{}", s.log());
    let log = s.log();
    for name in spindle::catalog::NAMES {
        let Ok(Endpoint::Tcp { port, .. }) =
            Endpoint::parse(spindle::catalog::default_endpoint(name).unwrap())
        else {
            panic!("{name} has a TCP default")
        };
        let port = port + offset;
        assert!(
            log.contains(&format!("[-] {name} on 127.0.0.2:{port}\n")),
            "{name}: {log}"
        );
        assert!(reachable("127.0.0.2", port), "{name} on 127.0.0.2:{port}");
        assert!(!reachable("127.0.0.1", port), "{name} also on 127.0.0.1");
    }
    // Every factory's line names the address, not only the port.
    let starting: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" starting on "))
        .collect();
    assert_eq!(starting.len(), spindle::catalog::NAMES.len(), "{log}");
    for line in starting {
        assert!(line.contains(" starting on 127.0.0.2:"), "{line}");
    }
}

#[test]
fn a_single_protocol_takes_the_interface_with_its_default_port() {
    let offset = free_offset();
    let s = Spindle::start(&[
        "serve",
        "echo",
        "--interface",
        "127.0.0.2",
        "--port-offset",
        &offset.to_string(),
    ]);
    assert_eq!(s.port_of("EchoFactory"), 1234 + offset);
    assert!(
        s.log()
            .contains(&format!("echo on 127.0.0.2:{}", 1234 + offset))
    );
    assert!(!reachable("127.0.0.1", 1234 + offset));
    let out = sh(&format!(
        "printf 'hi\\n' | nc -N 127.0.0.2 {}",
        1234 + offset
    ));
    assert_eq!(out, "hi\n");
}

#[test]
fn the_command_server_listens_on_loopback_unless_told_otherwise() {
    let offset = free_offset();
    let s = Spindle::start(&["serve", "cmd", "--port-offset", &offset.to_string()]);
    let port = s.port_of("CmdFactory");
    assert!(
        s.log()
            .contains(&format!("CmdFactory starting on 127.0.0.1:{port}")),
        "{}",
        s.log()
    );
    assert!(reachable("127.0.0.1", port));
    assert!(
        !reachable("127.0.0.2", port),
        "cmd reachable beyond 127.0.0.1"
    );
    drop(s);
    // Asked for, it goes wider.
    let s = Spindle::start(&[
        "serve",
        "cmd",
        "--interface",
        "0.0.0.0",
        "--port-offset",
        &offset.to_string(),
    ]);
    let port = s.port_of("CmdFactory");
    assert!(s.log().contains(&format!("cmd on 0.0.0.0:{port}")));
    assert!(reachable("127.0.0.2", port));
}

#[test]
fn interface_usage_errors_exit_2() {
    for (args, needle) in [
        (
            &[
                "serve",
                "echo",
                "--interface",
                "127.0.0.1",
                "--listen",
                "tcp:0",
            ][..],
            "cannot be used with",
        ),
        (&["serve", "all", "--interface", "nowhere"][..], "nowhere"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn the_process_model_refuses_chat_by_name_and_leaves_it_out_of_all() {
    let (code, err) = run(&[
        "serve",
        "chat",
        "--model",
        "process",
        "--listen",
        LOOPBACK_ANY,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("chat cannot run under --model process") && err.contains("alone"),
        "{err}"
    );
    let offset = free_offset();
    let s = Spindle::start(&[
        "serve",
        "all",
        "--model",
        "process",
        "--interface",
        "127.0.0.1",
        "--port-offset",
        &offset.to_string(),
    ]);
    // The engine warns just before it accepts, after every start line.
    assert!(
        s.wait_for_log("Site shares state between connections"),
        "{}",
        s.log()
    );
    let log = s.log();
    assert!(
        log.contains("chat cannot run under --model process")
            && log.contains("`serve all` leaves it out"),
        "{log}"
    );
    assert!(!log.contains("ChatFactory starting on"), "{log}");
    assert!(!reachable("127.0.0.1", 1025 + offset));
    // The others are served, each sharing loss logged as before.
    assert!(log.contains("WelcomeFactory shares state between connections"));
    assert!(log.contains("CmdFactory shares state between connections"));
    let out = sh(&format!(
        "printf 'hi\\n' | nc -N 127.0.0.1 {}",
        1234 + offset
    ));
    assert_eq!(out, "hi\n");
}
