//! The accept loop shared by the thread engines: waits on every listening
//! socket at once (mio), accepts until the backlog is empty, and hands each
//! new connection on. It wakes at once when the server is told to stop.
//!
//! Running out of file descriptors (`EMFILE`) is not fatal and must not
//! spin: the loop logs it, stops accepting for a back-off that doubles from
//! 10 ms to 1 s while the condition lasts, then tries again. The pending
//! connections wait in the kernel's backlog meanwhile.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::stopper::Stopper;
use super::stream::Stream;
use crate::endpoint::Listener;
use crate::protocol::Addr;

const WAKER: Token = Token(usize::MAX);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Whether an accept error means "out of some resource": back off.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Makes `listener` non-blocking and registers it for readable events
/// under `token`: shared by the thread engines' acceptor and the reactor.
pub(crate) fn register_listener(
    registry: &mio::Registry,
    listener: &Listener,
    token: Token,
) -> io::Result<()> {
    let fd = match listener {
        Listener::Tcp(l) => {
            l.set_nonblocking(true)?;
            l.as_raw_fd()
        }
        Listener::Unix(l, _) => {
            l.set_nonblocking(true)?;
            l.as_raw_fd()
        }
    };
    registry.register(&mut SourceFd(&fd), token, Interest::READABLE)
}

/// Accepts on `listeners` until `stopper` fires, calling `on_accept` with
/// the listener's index, the new (blocking) stream and its peer address.
pub(crate) fn accept_loop(
    listeners: &[&Listener],
    stopper: &Stopper,
    mut on_accept: impl FnMut(usize, Stream, Addr),
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    stopper.add_waker(waker);
    for (i, listener) in listeners.iter().enumerate() {
        register_listener(poll.registry(), listener, Token(i))?;
    }
    let mut events = Events::with_capacity(64);
    let mut backoff = FIRST_BACKOFF;
    let mut paused_until: Option<Instant> = None;
    // Listeners that may still have connections waiting (edge-triggered
    // readiness says nothing more about them until we drain them).
    let mut pending = vec![true; listeners.len()];
    while !stopper.is_stopped() {
        let timeout = paused_until.map(|t| t.saturating_duration_since(Instant::now()));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() != WAKER {
                pending[event.token().0] = true;
            }
        }
        if let Some(until) = paused_until {
            if Instant::now() < until {
                continue;
            }
            paused_until = None;
        }
        for (i, listener) in listeners.iter().enumerate() {
            while pending[i] && !stopper.is_stopped() {
                match accept(listener) {
                    Ok((stream, peer)) => {
                        backoff = FIRST_BACKOFF;
                        on_accept(i, stream, peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => pending[i] = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        log::debug!("a connection went away before accept: {e}");
                    }
                    Err(e) => {
                        if is_resource_exhaustion(&e) {
                            log::warn!("accept failed: {e}; pausing accepts for {backoff:?}");
                        } else {
                            log::error!("accept failed: {e}; pausing accepts for {backoff:?}");
                        }
                        paused_until = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                }
            }
            if paused_until.is_some() {
                break;
            }
        }
    }
    Ok(())
}

fn accept(listener: &Listener) -> io::Result<(Stream, Addr)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept()?;
            s.set_nonblocking(false)?;
            Ok((Stream::Tcp(s), Addr::Tcp(peer)))
        }
        Listener::Unix(l, _) => {
            let (s, peer) = l.accept()?;
            s.set_nonblocking(false)?;
            let path = peer.as_pathname().map(Into::into).unwrap_or_default();
            Ok((Stream::Unix(s), Addr::Unix(path)))
        }
    }
}
