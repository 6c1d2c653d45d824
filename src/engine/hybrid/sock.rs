//! A connected non-blocking socket of either family, as the hybrid's
//! poller and workers share it.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::engine::stream::Stream;

/// A non-blocking TCP or Unix stream.
pub(super) enum Sock {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Sock {
    /// Makes an accepted stream non-blocking (and TCP_NODELAY).
    pub(super) fn from_stream(stream: Stream) -> io::Result<Sock> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay();
        Ok(match stream {
            Stream::Tcp(s) => Sock::Tcp(mio::net::TcpStream::from_std(s)),
            Stream::Unix(s) => Sock::Unix(mio::net::UnixStream::from_std(s)),
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }

    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    pub(super) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(Shutdown::Write),
            Sock::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    /// The next close sends an RST (TCP; Unix sockets just close).
    pub(super) fn set_abortive_close(&self) {
        if let Sock::Tcp(s) = self {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}
