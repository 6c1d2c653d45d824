//! The line receiver on the pool engine over real loopback sockets: telnet
//! bytes cut across writes, Ctrl-C, a close mid-packet, and the handler
//! reached from another thread and from a timer.

mod util;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use spindle::framing::line::{LineConfig, LineHandler, LineReceiver, LineTransport, call_handler};
use spindle::{Endpoint, FnFactory, Protocol, RunningServer, Server, ServerConfig};
use util::{connect_addr, read_n, read_to_end, send};

/// Answers `you said: LINE`; `quit` says bye and closes; `later` answers
/// from a timer; `thread` answers from another thread through a handle.
struct Parrot {
    said: usize,
}

impl LineHandler for Parrot {
    fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
        self.said += 1;
        match line {
            b"quit" => {
                lines.send_line(b"bye");
                lines.lose_connection();
            }
            b"later" => {
                lines.call_handler_later(Duration::from_millis(10), |me: &mut Parrot, lines| {
                    lines.send_line(format!("later, after {} lines", me.said).as_bytes());
                });
            }
            b"thread" => {
                let handle = lines.handle();
                thread::spawn(move || {
                    call_handler(&handle, |me: &mut Parrot, lines| {
                        lines
                            .send_line(format!("from a thread, after {} lines", me.said).as_bytes())
                    })
                    .expect("the connection is open");
                });
            }
            _ => lines.write_sequence(&[b"you said: ", line, b"\r\n"]),
        }
    }
}

fn start() -> RunningServer {
    let factory = FnFactory::new("ParrotFactory", |_| {
        Box::new(LineReceiver::with_config(
            Parrot { said: 0 },
            LineConfig::lenient(),
        )) as Box<dyn Protocol>
    });
    let mut server = Server::new(ServerConfig::default());
    server
        .listen(&Endpoint::loopback_any_port(), Arc::new(factory))
        .expect("binds");
    server.spawn().expect("starts")
}

#[test]
fn telnet_commands_cut_across_writes_never_reach_the_handler_and_quit_stops_the_rest() {
    let server = start();
    let mut s = connect_addr(server.tcp_addr());
    // IAC DO ECHO cut after IAC, IAC SB ... IAC SE cut inside, CR NUL cut
    // between CR and NUL, IAC IAC as a literal 0xFF.
    for piece in [
        &b"he\xff"[..],
        b"\xfd\x01llo\r",
        b"\0ff=\xff\xff\xff\xfa\x18",
        b"\x00vt100\xff",
        b"\xf0!\n",
    ] {
        send(&mut s, piece);
    }
    // The first command brings DO BINARY; DO ECHO is refused (WONT ECHO)
    // where it came, before the first line.
    let expected = b"\xff\xfd\x00\xff\xfc\x01you said: hello\r\nyou said: ff=\xff!\r\n";
    assert_eq!(read_n(&mut s, expected.len()), expected);
    send(&mut s, b"one\nquit\r\nnever\r\n");
    assert_eq!(read_to_end(&mut s), b"you said: one\r\nbye\r\n");
}

#[test]
fn ctrl_c_closes_politely_after_answering_earlier_lines() {
    let server = start();
    let mut s = connect_addr(server.tcp_addr());
    send(&mut s, b"first\r\nhalf a li\xff\xf4ne\r\n");
    // The interrupt is the first command: DO BINARY goes out before the close.
    assert_eq!(read_to_end(&mut s), b"you said: first\r\n\xff\xfd\x00");
}

#[test]
fn the_handler_is_reached_from_a_timer_and_from_another_thread() {
    let server = start();
    let mut s = connect_addr(server.tcp_addr());
    send(&mut s, b"later\r\n");
    let expected = b"later, after 1 lines\r\n";
    assert_eq!(read_n(&mut s, expected.len()), expected);
    send(&mut s, b"thread\r\n");
    let expected = b"from a thread, after 2 lines\r\n";
    assert_eq!(read_n(&mut s, expected.len()), expected);
    send(&mut s, b"x\r\n");
    let expected = b"you said: x\r\n";
    assert_eq!(read_n(&mut s, expected.len()), expected);
}
