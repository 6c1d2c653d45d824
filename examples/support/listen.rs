//! How the comparison servers in examples/ listen: on loopback, with the
//! backlog `spindle bench` gives Spindle's servers (`BENCH_BACKLOG`), so a
//! ramp to 1,024 connections meets the same accept queue everywhere (std's
//! `TcpListener::bind` asks for 128).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// The listen backlog: `spindle::load::bench::BENCH_BACKLOG`.
pub const BACKLOG: i32 = 1024;

/// A listener on 127.0.0.1:`port` (0: a free port).
pub fn loopback(port: u16) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
