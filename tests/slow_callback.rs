//! The slow-callback watchdog (`--slow-callback`, reactor and hybrid): a
//! callback that runs past the limit is logged once, with the protocol,
//! the session, the peer, which callback and how long; fast ones and a
//! watchdog turned off log nothing.

mod util;

use std::sync::Mutex;
use std::time::Duration;

use spindle::{FnFactory, Model, Protocol, ServerConfig, Transport};
use util::{DEADLINE, connect_addr, read_n, send, wait_until};

static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}", record.level(), record.args());
        CAPTURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
    fn flush(&self) {}
}

fn captured() -> Vec<String> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Info);
    });
    CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `s` makes data_received sleep 150 ms (the behaviour under test: a
/// callback that blocks); anything else is answered at once.
struct Sleepy;

impl Protocol for Sleepy {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if data.contains(&b's') {
            std::thread::sleep(Duration::from_millis(150));
        }
        t.write(b"k");
    }
}

struct SleepyOff;

impl Protocol for SleepyOff {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        Sleepy.data_received(data, t)
    }
}

fn mentions(needle: &str) -> Vec<String> {
    captured()
        .into_iter()
        .filter(|l| l.contains("slow callback") && l.contains(needle))
        .collect()
}

fn config(model: Model, limit: Option<Duration>) -> ServerConfig {
    ServerConfig {
        model,
        workers: 4,
        slow_callback: limit,
        ..ServerConfig::default()
    }
}

fn a_callback_past_the_limit_is_logged_once_with_its_details(model: Model) {
    captured();
    let server = util::start_server(
        config(model, Some(Duration::from_millis(50))),
        FnFactory::new("Sleepy", |_| Box::new(Sleepy) as Box<dyn Protocol>),
    );
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"f");
    assert_eq!(read_n(&mut c, 1), b"k");
    send(&mut c, b"s");
    assert_eq!(read_n(&mut c, 1), b"k");
    // The slow one is answered, so its line is written; one more fast
    // round trip shows nothing else follows it.
    send(&mut c, b"f");
    assert_eq!(read_n(&mut c, 1), b"k");
    let port = c.local_addr().unwrap().port().to_string();
    let ours = || mentions(&format!("127.0.0.1:{port}"));
    assert!(
        wait_until(DEADLINE, || !ours().is_empty()),
        "{:?}",
        captured()
    );
    let lines = ours();
    assert_eq!(lines.len(), 1, "{model}: {lines:?}");
    let line = &lines[0];
    for part in [
        "WARN slow callback: data_received of Sleepy session 0 from 127.0.0.1:",
        " ran ",
        " (--slow-callback 50ms)",
    ] {
        assert!(line.contains(part), "{model}: {part:?} not in {line:?}");
    }
    server.stop().unwrap();
}

fn a_watchdog_turned_off_logs_nothing(model: Model) {
    captured();
    let server = util::start_server(
        config(model, None),
        FnFactory::new("SleepyOff", |_| Box::new(SleepyOff) as Box<dyn Protocol>),
    );
    let mut c = connect_addr(server.tcp_addr());
    send(&mut c, b"s");
    assert_eq!(read_n(&mut c, 1), b"k");
    server.stop().unwrap();
    assert!(
        mentions("SleepyOff").is_empty(),
        "{:?}",
        mentions("SleepyOff")
    );
}

mod watchdog {
    use super::*;

    #[test]
    fn reactor_logs_a_slow_callback_once() {
        a_callback_past_the_limit_is_logged_once_with_its_details(Model::Reactor);
    }
    #[test]
    fn hybrid_logs_a_slow_callback_once() {
        a_callback_past_the_limit_is_logged_once_with_its_details(Model::Hybrid);
    }
    #[test]
    fn reactor_off_logs_nothing() {
        a_watchdog_turned_off_logs_nothing(Model::Reactor);
    }
    #[test]
    fn hybrid_off_logs_nothing() {
        a_watchdog_turned_off_logs_nothing(Model::Hybrid);
    }
}
