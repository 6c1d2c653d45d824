//! Client endpoints, `connect` and the `ClientFactory` callbacks, on real
//! loopback sockets against Spindle's own echo server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use spindle::client::{
    ClientConfig, ClientEndpoint, ClientFactory, ConnectError, Connector, connect,
};
use spindle::{Addr, Endpoint, Protocol, Reason, Server, ServerConfig, Transport};

const WAIT: Duration = Duration::from_secs(10);

/// Everything a client saw, in order.
#[derive(Debug, PartialEq)]
enum Event {
    Started,
    Failed(ConnectError),
    Made,
    Data(Vec<u8>),
    Lost(Reason),
    FactoryLost(Reason),
}

/// Sends `hello`, closes once it has heard it back.
struct Hello {
    events: Sender<Event>,
    heard: Vec<u8>,
}

impl Protocol for Hello {
    fn connection_made(&mut self, transport: &mut Transport) {
        let _ = self.events.send(Event::Made);
        transport.write(b"hello");
    }
    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        self.heard.extend_from_slice(data);
        if self.heard == b"hello" {
            let _ = self.events.send(Event::Data(self.heard.clone()));
            transport.lose_connection();
        }
    }
    fn connection_lost(&mut self, reason: &Reason) {
        let _ = self.events.send(Event::Lost(reason.clone()));
    }
}

struct Recorder {
    events: Sender<Event>,
}

impl ClientFactory for Recorder {
    fn build_protocol(&self, _peer: &Addr) -> Box<dyn Protocol> {
        Box::new(Hello {
            events: self.events.clone(),
            heard: Vec::new(),
        })
    }
    fn started_connecting(&self, _: &Connector) {
        let _ = self.events.send(Event::Started);
    }
    fn client_connection_failed(&self, _: &Connector, reason: &ConnectError) {
        let _ = self.events.send(Event::Failed(reason.clone()));
    }
    fn client_connection_lost(&self, _: &Connector, reason: &Reason) {
        let _ = self.events.send(Event::FactoryLost(reason.clone()));
    }
}

fn recorder() -> (Arc<Recorder>, Receiver<Event>) {
    let (tx, rx) = unbounded();
    (Arc::new(Recorder { events: tx }), rx)
}

fn events(connector: &Connector, rx: &Receiver<Event>) -> Vec<Event> {
    assert!(connector.wait(WAIT), "the attempt did not end in time");
    rx.try_iter().collect()
}

fn echo_server(endpoint: &Endpoint) -> spindle::RunningServer {
    let mut server = Server::new(ServerConfig::default());
    server
        .listen(endpoint, Arc::new(spindle::protocols::echo::factory()))
        .unwrap();
    server.spawn().unwrap()
}

#[test]
fn tcp_round_trip_with_every_callback_in_order() {
    let server = echo_server(&Endpoint::loopback_any_port());
    let port = server.tcp_addr().port();
    for form in [
        format!("tcp:127.0.0.1:{port}"),
        format!("tcp:host=localhost:port={port}:timeout=5"),
    ] {
        let (factory, rx) = recorder();
        let c = connect(
            &ClientEndpoint::parse(&form).unwrap(),
            factory,
            ClientConfig::default(),
        );
        assert_eq!(
            events(&c, &rx),
            vec![
                Event::Started,
                Event::Made,
                Event::Data(b"hello".to_vec()),
                Event::Lost(Reason::Done),
                Event::FactoryLost(Reason::Done),
            ],
            "{form}"
        );
    }
    server.stop().unwrap();
}

#[test]
fn unix_round_trip() {
    let dir = std::env::temp_dir().join(format!("spindle-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let server = echo_server(&Endpoint::parse(&format!("unix:{}", path.display())).unwrap());
    let (factory, rx) = recorder();
    let ep = ClientEndpoint::parse(&format!("unix:{}", path.display())).unwrap();
    let c = connect(&ep, factory, ClientConfig::default());
    let seen = events(&c, &rx);
    assert!(seen.contains(&Event::Data(b"hello".to_vec())), "{seen:?}");
    server.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refused_is_reported_to_the_factory() {
    // A port that was free a moment ago: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (factory, rx) = recorder();
    let c = connect(
        &ClientEndpoint::parse(&format!("tcp:127.0.0.1:{port}")).unwrap(),
        factory,
        ClientConfig::default(),
    );
    let seen = events(&c, &rx);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], Event::Started);
    match &seen[1] {
        Event::Failed(e) => {
            assert!(e.is_refused(), "{e}");
            assert!(e.to_string().contains("Connection refused"), "{e}");
        }
        other => panic!("wanted a failure, got {other:?}"),
    }
}

#[test]
fn unknown_host_is_a_resolve_error() {
    let (factory, rx) = recorder();
    let c = connect(
        &ClientEndpoint::parse("tcp:no-such-host.invalid:80:timeout=3").unwrap(),
        factory,
        ClientConfig::default(),
    );
    let seen = events(&c, &rx);
    match &seen[1] {
        Event::Failed(e @ (ConnectError::Resolve { .. } | ConnectError::TimedOut { .. })) => {
            assert!(
                e.to_string().contains("no-such-host.invalid") || e.is_timeout(),
                "{e}"
            );
        }
        other => panic!("wanted a resolve failure, got {other:?}"),
    }
}

#[test]
fn a_missing_unix_socket_fails_clearly() {
    let (factory, rx) = recorder();
    let c = connect(
        &ClientEndpoint::parse("unix:/nonexistent/spindle.sock").unwrap(),
        factory,
        ClientConfig::default(),
    );
    let seen = events(&c, &rx);
    match &seen[1] {
        Event::Failed(e) => assert!(
            e.to_string().contains("unix:/nonexistent/spindle.sock"),
            "{e}"
        ),
        other => panic!("wanted a failure, got {other:?}"),
    }
}

#[test]
fn a_silent_server_times_the_tls_handshake_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (factory, rx) = recorder();
    // 2 s, not less: on a busy machine the TCP connect alone (which the
    // same timeout covers) has taken over 500 ms to be scheduled.
    let c = connect(
        &ClientEndpoint::parse(&format!("tls:127.0.0.1:{port}:timeout=2")).unwrap(),
        factory,
        ClientConfig::default(),
    );
    let seen = events(&c, &rx);
    match &seen[1] {
        Event::Failed(e) => {
            assert!(e.is_timeout(), "{e}");
            assert!(e.to_string().contains("TLS handshake timed out"), "{e}");
        }
        other => panic!("wanted a timeout, got {other:?}"),
    }
    drop(listener);
}

#[test]
fn disconnect_closes_a_live_connection_and_idle_timeout_fires() {
    /// Says nothing, hears nothing: only a close ends it.
    struct Quiet(Sender<Event>);
    impl Protocol for Quiet {
        fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
        fn connection_lost(&mut self, reason: &Reason) {
            let _ = self.0.send(Event::Lost(reason.clone()));
        }
    }
    struct QuietFactory(Sender<Event>);
    impl ClientFactory for QuietFactory {
        fn build_protocol(&self, _: &Addr) -> Box<dyn Protocol> {
            let _ = self.0.send(Event::Made);
            Box::new(Quiet(self.0.clone()))
        }
    }
    let server = echo_server(&Endpoint::loopback_any_port());
    let ep = ClientEndpoint::parse(&format!("tcp:127.0.0.1:{}", server.tcp_addr().port())).unwrap();

    let (tx, rx) = unbounded();
    let c = connect(&ep, Arc::new(QuietFactory(tx)), ClientConfig::default());
    assert_eq!(rx.recv_timeout(WAIT), Ok(Event::Made));
    // The handle is published before connection_made; wait for it.
    let deadline = std::time::Instant::now() + WAIT;
    while c.handle().is_none() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    c.disconnect();
    assert_eq!(rx.recv_timeout(WAIT), Ok(Event::Lost(Reason::Done)));
    assert!(c.wait(WAIT));

    let (tx, rx) = unbounded();
    let config = ClientConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..ClientConfig::default()
    };
    let c = connect(&ep, Arc::new(QuietFactory(tx)), config);
    assert_eq!(rx.recv_timeout(WAIT), Ok(Event::Made));
    assert_eq!(
        rx.recv_timeout(WAIT),
        Ok(Event::Lost(Reason::TimedOut("idle")))
    );
    assert!(c.wait(WAIT));
    server.stop().unwrap();
}

#[test]
fn a_unix_listener_with_a_full_backlog_times_the_connect_out() {
    let dir = std::env::temp_dir().join(format!("spindle-client-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("full.sock");
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&socket2::SockAddr::unix(&path).unwrap())
        .unwrap();
    socket.listen(0).unwrap(); // never accepts
    let ep = ClientEndpoint::parse(&format!("unix:{}:timeout=0.2", path.display())).unwrap();
    let mut timed_out = false;
    let mut held = Vec::new();
    for _ in 0..16 {
        let (factory, rx) = recorder();
        let c = connect(&ep, factory, ClientConfig::default());
        // Connected attempts stay open (the server never speaks); keep them.
        let first_two: Vec<Event> = (0..2).filter_map(|_| rx.recv_timeout(WAIT).ok()).collect();
        match first_two.get(1) {
            Some(Event::Failed(e)) => {
                assert!(e.is_timeout(), "{e}");
                timed_out = true;
                break;
            }
            Some(Event::Made) => held.push(c),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(timed_out, "the backlog never filled");
    for c in held {
        c.disconnect();
        assert!(c.wait(WAIT));
    }
    drop(socket);
    let _ = std::fs::remove_dir_all(&dir);
}
