//! The core's promises, fed events directly: no sockets, no threads.

use std::time::{Duration, Instant};

use super::*;
use crate::protocol::Addr;
use crate::transport::{ConnHandle, ConnInfo, OwnerLink, Transport};

/// A line protocol that records every callback and obeys commands:
/// `quit` closes, `abort` aborts, `panic` panics, `later N` arms a timer
/// of N ms that writes `tick`, anything else is echoed.
#[derive(Default)]
struct Script {
    events: Vec<String>,
    partial: Vec<u8>,
    lost: Vec<Reason>,
    panic_on_made: bool,
}

impl Protocol for Script {
    fn connection_made(&mut self, t: &mut Transport) {
        self.events.push("made".into());
        if self.panic_on_made {
            panic!("made went wrong");
        }
        t.write(b"hi\n");
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.partial.extend_from_slice(data);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..i]).into_owned();
            self.events.push(format!("line {line}"));
            match line.as_str() {
                "quit" => {
                    t.write(b"bye\n");
                    t.lose_connection();
                }
                "abort" => t.abort_connection(),
                "pause" => t.pause_producing(),
                "panic" => panic!("asked to"),
                "handle" => {
                    let _ = t.handle();
                }
                l if l.starts_with("later ") => {
                    let ms = l[6..].parse().unwrap_or(0);
                    t.call_later(Duration::from_millis(ms), |p: &mut Script, t| {
                        p.events.push("tick".into());
                        t.write(b"tick\n");
                    });
                }
                _ => {
                    t.write(line.as_bytes());
                    t.write(b"\n");
                }
            }
            if t.is_disconnecting() {
                return;
            }
        }
    }

    fn producing_resumed(&mut self, _t: &mut Transport) {
        self.events.push("resumed".into());
    }

    fn connection_lost(&mut self, reason: &Reason) {
        self.lost.push(reason.clone());
    }
}

struct NoLink;

impl OwnerLink for NoLink {
    fn wake(&self) {}
    fn kill(&self) {}
    fn close_by(&self, _: Instant) {}
}

fn info() -> ConnInfo {
    let a = Addr::Tcp("127.0.0.1:1".parse().unwrap());
    ConnInfo {
        peer: a.clone(),
        host: a,
        session: 0,
    }
}

fn core_with(idle: Option<Duration>, capacity: usize, now: Instant) -> Core {
    let mut t = Transport::new(info(), capacity);
    t.set_link(std::sync::Arc::new(NoLink));
    Core::new(t, Arc::new(Control::default()), idle, now)
}

fn core() -> Core {
    core_with(None, 16, Instant::now())
}

fn take(core: &mut Core) -> String {
    String::from_utf8_lossy(&std::mem::take(core.output())).into_owned()
}

#[test]
fn core_and_protocols_are_send() {
    fn send<T: Send>() {}
    send::<Core>();
    send::<Transport>();
    send::<Box<dyn Protocol>>();
}

#[test]
fn made_writes_and_goes_on() {
    let (mut c, mut p) = (core(), Script::default());
    assert_eq!(c.made(&mut p), Ok(()));
    assert_eq!(take(&mut c), "hi\n");
    assert!(c.wants_input());
}

#[test]
fn every_chunking_gives_the_same_output_and_close() {
    let input = b"one\ntwo\nquit\nafter\n";
    let mut whole = None;
    for chunk in 1..=input.len() {
        let (mut c, mut p) = (core(), Script::default());
        c.made(&mut p).unwrap();
        let mut out = take(&mut c);
        let mut end = None;
        for piece in input.chunks(chunk) {
            match c.received(&mut p, piece, Instant::now()) {
                Ok(()) => out += &take(&mut c),
                Err(e) => {
                    out += &take(&mut c);
                    end = Some(e);
                    break;
                }
            }
        }
        let got = (out, end, p.events.clone());
        assert_eq!(got.0, "hi\none\ntwo\nbye\n", "chunk {chunk}");
        assert_eq!(got.1, Some(End::clean(Reason::Done)), "chunk {chunk}");
        match &whole {
            None => whole = Some(got),
            Some(w) => assert_eq!(&got, w, "chunk {chunk}"),
        }
    }
}

#[test]
fn close_then_more_input_delivers_nothing() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    let end = c.received(&mut p, b"quit\n", Instant::now()).unwrap_err();
    assert_eq!(end, End::clean(Reason::Done));
    assert_eq!(
        take(&mut c),
        "hi\nbye\n",
        "the output before the close stays"
    );
    let events = p.events.len();
    // More input, a due timer, a command: nothing runs, the same End.
    assert_eq!(
        c.received(&mut p, b"more\n", Instant::now()),
        Err(end.clone())
    );
    assert_eq!(c.due(&mut p, Instant::now()), Err(end.clone()));
    assert_eq!(c.commands(&mut p, None, 8), Err(end.clone()));
    assert_eq!(p.events.len(), events);
    assert!(!c.wants_input());
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn abort_drops_output_and_resets() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    assert_eq!(
        c.received(&mut p, b"abort\n", Instant::now()),
        Err(End::abort(Reason::Aborted))
    );
    assert!(c.output().is_empty());
}

#[test]
fn a_panic_in_each_kind_of_callback_aborts_only_this_connection() {
    // connection_made
    let (mut c, mut p) = (core(), Script::default());
    p.panic_on_made = true;
    let end = c.made(&mut p).unwrap_err();
    assert_eq!(end, End::abort(Reason::Panicked("made went wrong".into())));
    assert!(
        c.output().is_empty(),
        "a panicking callback's output is dropped"
    );
    // data_received
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    let end = c.received(&mut p, b"panic\n", Instant::now()).unwrap_err();
    assert_eq!(end, End::abort(Reason::Panicked("asked to".into())));
    // an inbox closure
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    let h: ConnHandle = c.transport_mut().handle();
    c.received(&mut p, b"x\n", Instant::now()).unwrap();
    h.call(|_: &mut Script, _| panic!("in a closure")).unwrap();
    let end = c.commands(&mut p, None, 8).unwrap_err();
    assert_eq!(end, End::abort(Reason::Panicked("in a closure".into())));
    // a timer
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    c.transport_mut()
        .call_later(Duration::ZERO, |_: &mut Script, _| panic!("in a timer"));
    let end = c.due(&mut p, Instant::now() + Duration::from_millis(1));
    assert_eq!(end, Err(End::abort(Reason::Panicked("in a timer".into()))));
    // connection_lost: caught and logged, the driver goes on.
    struct Grumpy;
    impl Protocol for Grumpy {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
        fn connection_lost(&mut self, _: &Reason) {
            panic!("in connection_lost");
        }
    }
    let mut c = core();
    c.lost(&mut Grumpy, &Reason::Done);
    assert_eq!(c.ended(), Some(&End::clean(Reason::Done)));
}

#[test]
fn connection_lost_runs_exactly_once() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    c.lost(&mut p, &Reason::Done);
    c.lost(&mut p, &Reason::Aborted);
    assert_eq!(p.lost, vec![Reason::Done]);
    assert_eq!(
        c.received(&mut p, b"x\n", Instant::now()),
        Err(End::clean(Reason::Done))
    );
}

#[test]
fn a_batch_runs_in_order_and_stops_at_a_close() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    take(&mut c);
    let h = c.transport_mut().handle();
    c.received(&mut p, b"x\n", Instant::now()).unwrap();
    take(&mut c);
    h.write("a").unwrap();
    h.write("b").unwrap();
    h.lose_connection().unwrap();
    h.write("c").unwrap();
    assert_eq!(c.commands(&mut p, None, 64), Err(End::clean(Reason::Done)));
    assert_eq!(
        take(&mut c),
        "ab",
        "one write for the batch, nothing after the close"
    );
    assert_eq!(h.queued(), 1, "the command after the close was not run");
}

#[test]
fn a_batch_is_bounded_and_starts_with_the_received_command() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    take(&mut c);
    let h = c.transport_mut().handle();
    c.received(&mut p, b"x\n", Instant::now()).unwrap();
    take(&mut c);
    for i in 0..5 {
        h.write(i.to_string()).unwrap();
    }
    let first = c.inbox().unwrap().try_recv().unwrap();
    assert_eq!(c.commands(&mut p, Some(first), 3), Ok(()));
    assert_eq!(take(&mut c), "012");
    assert!(c.has_commands());
    assert_eq!(c.commands(&mut p, None, 3), Ok(()));
    assert_eq!(take(&mut c), "34");
    assert!(!c.has_commands());
}

#[test]
fn a_kill_through_the_control_aborts_at_the_next_event() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    assert!(c.control().kill());
    assert!(!c.control().kill());
    assert_eq!(
        c.received(&mut p, b"x\n", Instant::now()),
        Err(End::abort(Reason::Aborted))
    );
}

#[test]
fn timers_run_when_due_in_order_and_set_the_next_deadline() {
    let start = Instant::now();
    let (mut c, mut p) = (core_with(None, 4, start), Script::default());
    c.made(&mut p).unwrap();
    take(&mut c);
    assert_eq!(c.next_deadline(), None);
    c.received(&mut p, b"later 50\nlater 10\n", start).unwrap();
    let next = c.next_deadline().unwrap();
    assert!(next >= start + Duration::from_millis(10) && next < start + Duration::from_millis(50));
    assert!(!c.timer_due(start));
    c.due(&mut p, start).unwrap();
    assert_eq!(take(&mut c), "", "nothing due yet");
    let late = Instant::now() + Duration::from_millis(60);
    assert!(c.timer_due(late));
    c.due(&mut p, late).unwrap();
    assert_eq!(take(&mut c), "tick\ntick\n");
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn timers_per_turn_are_bounded() {
    struct Rearm(usize);
    fn rearm(p: &mut Rearm, t: &mut Transport) {
        p.0 += 1;
        t.call_later(Duration::ZERO, rearm);
    }
    impl Protocol for Rearm {
        fn connection_made(&mut self, t: &mut Transport) {
            t.call_later(Duration::ZERO, rearm);
        }
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
    }
    let mut c = core();
    let mut p = Rearm(0);
    c.made(&mut p).unwrap();
    let far = Instant::now() + Duration::from_secs(3600);
    c.due(&mut p, far).unwrap();
    assert_eq!(p.0, TIMERS_PER_TURN);
    assert!(c.next_deadline().is_some_and(|d| d <= far));
}

#[test]
fn the_idle_timeout_counts_from_the_last_input() {
    let start = Instant::now();
    let idle = Duration::from_secs(10);
    let (mut c, mut p) = (core_with(Some(idle), 4, start), Script::default());
    c.made(&mut p).unwrap();
    assert_eq!(c.next_deadline(), Some(start + idle));
    let later = start + Duration::from_secs(5);
    c.received(&mut p, b"x\n", later).unwrap();
    assert_eq!(c.next_deadline(), Some(later + idle));
    assert_eq!(c.due(&mut p, start + idle), Ok(()), "not idle yet");
    assert_eq!(
        c.due(&mut p, later + idle),
        Err(End::clean(Reason::TimedOut("idle")))
    );
}

#[test]
fn the_close_deadline_is_a_deadline_and_aborts_when_passed() {
    let start = Instant::now();
    let (mut c, mut p) = (core_with(None, 4, start), Script::default());
    c.made(&mut p).unwrap();
    let at = start + Duration::from_secs(30);
    assert!(c.control().close_by(at));
    assert!(
        !c.control().close_by(at + Duration::from_secs(1)),
        "only earlier"
    );
    assert_eq!(c.next_deadline(), Some(at));
    assert_eq!(c.due(&mut p, start), Ok(()));
    assert_eq!(
        c.due(&mut p, at),
        Err(End::abort(Reason::TimedOut("close deadline")))
    );
    assert_eq!(
        c.control().check(at),
        Err(End::abort(Reason::TimedOut("close deadline")))
    );
}

#[test]
fn the_input_ending_closes_cleanly_with_the_reason_given() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    assert_eq!(
        c.input_ended(Reason::Shutdown),
        Err(End::clean(Reason::Shutdown))
    );
    assert_eq!(c.ended(), Some(&End::clean(Reason::Shutdown)));
}

#[test]
fn a_failure_after_a_clean_close_turns_it_into_an_abort() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    c.received(&mut p, b"quit\n", Instant::now()).unwrap_err();
    // The flush failed: the connection is reset, and says why.
    let lost = End::abort(Reason::Lost("broken pipe".into()));
    assert_eq!(c.fail(lost.clone()), lost);
    assert!(c.output().is_empty());
    // A clean end after an abort stays an abort.
    assert_eq!(c.fail(End::clean(Reason::Shutdown)), lost);
}

#[test]
fn the_inbox_is_picked_up_after_the_callback_that_made_a_handle() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    assert!(c.inbox().is_none());
    c.received(&mut p, b"handle\n", Instant::now()).unwrap();
    assert!(c.inbox().is_some());
}

#[test]
fn a_close_with_a_reason_tells_connection_lost_that_reason() {
    struct Limited;
    impl Protocol for Limited {
        fn data_received(&mut self, _: &[u8], t: &mut Transport) {
            t.write(b"line too long\n");
            t.lose_connection_because(Reason::TimedOut("max line length"));
        }
    }
    let mut c = core();
    c.made(&mut Limited).unwrap();
    let end = c.received(&mut Limited, b"x", Instant::now()).unwrap_err();
    assert_eq!(end, End::clean(Reason::TimedOut("max line length")));
    assert_eq!(take(&mut c), "line too long\n");
    struct Broken;
    impl Protocol for Broken {
        fn data_received(&mut self, _: &[u8], t: &mut Transport) {
            t.abort_connection_because(Reason::Lost("TLS: bad record".into()));
        }
    }
    let mut c = core();
    let end = c.received(&mut Broken, b"x", Instant::now()).unwrap_err();
    assert_eq!(end, End::abort(Reason::Lost("TLS: bad record".into())));
}

#[test]
fn a_protocol_that_pauses_wants_no_input_but_still_runs_timers_and_commands() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    c.received(&mut p, b"handle\nlater 0\npause\n", Instant::now())
        .unwrap();
    assert!(!c.wants_input(), "paused: the driver must not read");
    let h = c.transport_mut().handle();
    // Timers run while paused.
    c.due(&mut p, Instant::now() + Duration::from_millis(1))
        .unwrap();
    assert_eq!(p.events.last().map(String::as_str), Some("tick"));
    assert!(!c.wants_input());
    // So do inbox commands; a resume among them lets input in again and
    // tells the protocol, once.
    h.write("queued\n").unwrap();
    h.resume_producing().unwrap();
    h.resume_producing().unwrap();
    c.commands(&mut p, None, 16).unwrap();
    assert!(c.wants_input());
    assert_eq!(
        p.events.iter().filter(|e| *e == "resumed").count(),
        1,
        "{:?}",
        p.events
    );
    assert!(take(&mut c).ends_with("tick\nqueued\n"));
}

#[test]
fn a_handle_pauses_and_resumes_in_the_order_of_its_commands() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    c.received(&mut p, b"handle\n", Instant::now()).unwrap();
    let h = c.transport_mut().handle();
    h.write("a\n").unwrap();
    h.pause_producing().unwrap();
    c.commands(&mut p, None, 16).unwrap();
    assert!(!c.wants_input());
    assert!(!p.events.contains(&"resumed".to_string()));
    h.resume_producing().unwrap();
    h.pause_producing().unwrap();
    c.commands(&mut p, None, 16).unwrap();
    assert!(!c.wants_input(), "the later pause wins");
    h.resume_producing().unwrap();
    c.commands(&mut p, None, 16).unwrap();
    assert!(c.wants_input());
    // A resume of input that was not paused calls nothing.
    h.resume_producing().unwrap();
    c.commands(&mut p, None, 16).unwrap();
    assert_eq!(p.events.iter().filter(|e| *e == "resumed").count(), 2);
}

#[test]
fn an_ended_connection_wants_no_input_even_when_resumed() {
    let (mut c, mut p) = (core(), Script::default());
    c.made(&mut p).unwrap();
    c.received(&mut p, b"handle\n", Instant::now()).unwrap();
    let h = c.transport_mut().handle();
    h.pause_producing().unwrap();
    h.lose_connection().unwrap();
    h.resume_producing().unwrap();
    assert!(c.commands(&mut p, None, 16).is_err());
    assert!(!c.wants_input());
}
