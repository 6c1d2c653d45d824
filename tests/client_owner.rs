//! The client connection is served by the server's owner and core, so it
//! keeps the same promises; here, what the old client loop got wrong.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};
use spindle::client::{ClientConfig, ClientEndpoint, ClientFactory, Connector, connect};
use spindle::protocols::echo;
use spindle::{Addr, Protocol, Reason, ServerConfig, Transport};
use util::DEADLINE;

enum Event {
    Data(Vec<u8>),
    Lost(Reason),
}

struct Listen(Sender<Event>);

impl Protocol for Listen {
    fn data_received(&mut self, data: &[u8], _: &mut Transport) {
        let _ = self.0.send(Event::Data(data.to_vec()));
    }
    fn connection_lost(&mut self, reason: &Reason) {
        let _ = self.0.send(Event::Lost(reason.clone()));
    }
}

struct Factory(Sender<Event>);

impl ClientFactory for Factory {
    fn build_protocol(&self, _: &Addr) -> Box<dyn Protocol> {
        Box::new(Listen(self.0.clone()))
    }
}

fn handle_of(connector: &Connector) -> spindle::ConnHandle {
    let start = Instant::now();
    loop {
        if let Some(h) = connector.handle() {
            return h;
        }
        assert!(start.elapsed() < DEADLINE, "the client never connected");
        std::thread::yield_now();
    }
}

/// `close_within` used to kill a client connection at once; like a server
/// connection's, it now lets the connection go on until the deadline, and
/// aborts it then if it is still open.
#[test]
fn close_within_is_a_deadline_on_the_client_too() {
    let server = util::start_server(ServerConfig::default(), echo::factory());
    let endpoint = ClientEndpoint::parse(&format!("tcp:127.0.0.1:{}", server.tcp_addr().port()))
        .expect("a valid endpoint");
    let (tx, rx) = unbounded();
    let connector = connect(&endpoint, Arc::new(Factory(tx)), ClientConfig::default());
    let handle = handle_of(&connector);
    let grace = Duration::from_millis(300);
    let set = Instant::now();
    handle.close_within(grace);
    handle.write("still here").expect("the inbox has room");
    let mut echoed = Vec::new();
    while echoed != b"still here" {
        match rx.recv_timeout(DEADLINE) {
            Ok(Event::Data(d)) => echoed.extend_from_slice(&d),
            Ok(Event::Lost(r)) => panic!("lost before the deadline: {r}"),
            Err(_) => panic!("no echo"),
        }
    }
    match rx.recv_timeout(DEADLINE) {
        Ok(Event::Lost(reason)) => {
            assert_eq!(reason, Reason::TimedOut("close deadline"));
            assert!(set.elapsed() >= grace, "closed before the deadline");
        }
        Ok(Event::Data(d)) => panic!("unexpected data {d:?}"),
        Err(_) => panic!("the deadline was not kept"),
    }
}
