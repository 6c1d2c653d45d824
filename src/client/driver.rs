//! A connected client connection, served by the same blocking owner as a
//! server connection (`engine/connection.rs`, driving the connection core
//! `engine/core.rs`): one callback at a time, writes after each callback,
//! inbox batches, timers, the idle and write timeouts and `close_within`
//! are kept exactly as on the server side.
//!
//! TLS is a protocol wrapper here too, mirroring the server's: after the
//! handshake (`dial.rs`), the protocol is wrapped in a
//! [`TlsProtocol`](crate::tls_server::TlsProtocol) that decrypts what the
//! owner reads and encrypts what the protocol writes.

use std::sync::Arc;
use std::time::Duration;

use super::ClientConfig;
use super::dial::Opened;
use super::factory::ClientFactory;
use crate::engine::connection::{ConnEnv, serve_with};
use crate::engine::registry::Registry;
use crate::engine::{ServerConfig, Stopper, Stream};
use crate::protocol::{Addr, Protocol, Reason};
use crate::tls_server::TlsProtocol;
use crate::transport::{ConnHandle, ConnInfo};

fn local_addr(stream: &Stream) -> Addr {
    match stream {
        Stream::Tcp(s) => s
            .local_addr()
            .map(Addr::Tcp)
            .unwrap_or_else(|_| Addr::Unix(Default::default())),
        Stream::Unix(_) => Addr::Unix(Default::default()),
    }
}

/// The owner's bounds for a client connection. A client does not linger
/// after its FIN: nothing it could lose by closing is still on its way.
fn owner_config(config: &ClientConfig) -> ServerConfig {
    ServerConfig {
        idle_timeout: config.idle_timeout,
        write_timeout: config.write_timeout,
        outbound_queue: config.outbound_queue,
        read_buffer: config.read_buffer,
        stack_size: config.stack_size,
        close_linger: Duration::ZERO,
        ..ServerConfig::default()
    }
}

/// Serves one connected client connection to its end and returns why it
/// ended (after the protocol's `connection_lost`). `on_handle` gets the
/// connection's handle before `connection_made`.
pub(crate) fn run(
    opened: Opened,
    factory: &dyn ClientFactory,
    config: &ClientConfig,
    on_handle: impl FnOnce(ConnHandle),
) -> Reason {
    let Opened { stream, tls } = opened;
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| Addr::Unix(Default::default()));
    let host = local_addr(&stream);
    let protocol = factory.build_protocol(&peer);
    let context = format!("{},client", protocol.log_prefix());
    let info = ConnInfo {
        peer,
        host,
        session: 0,
    };
    // With TLS the caller's handle must reach the wrapped protocol, whose
    // closures it carries, not the wrapper.
    let (protocol, inner_handle): (Box<dyn Protocol>, _) = match tls {
        Some(conn) => {
            let mut wrapper =
                TlsProtocol::client(protocol, *conn, info.clone(), config.outbound_queue);
            let handle = wrapper.inner_handle();
            (Box::new(wrapper), handle)
        }
        None => (protocol, None),
    };
    let env = ConnEnv {
        config: Arc::new(owner_config(config)),
        // A client connection ends by itself; nothing stops it from outside.
        stopper: Stopper::new(),
        registry: Arc::new(Registry::default()),
        hints: None,
    };
    serve_with(stream, protocol, info, &env, context, |t| {
        on_handle(inner_handle.unwrap_or_else(|| t.handle()))
    })
}
