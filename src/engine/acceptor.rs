//! Accepting, for every engine. [`accept_loop`], the thread engines' loop, waits on every listening
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

/// Accepting on a set of listeners: which may have connections waiting
/// (edge-triggered readiness says nothing more about one until it is
/// drained), and the back-off after a failed accept. The one accept logic
/// of every engine: the thread engines' [`accept_loop`] and the reactor.
pub(crate) struct Accepting {
    pending: Vec<bool>,
    backoff: Duration,
    paused_until: Option<Instant>,
}

impl Accepting {
    /// `listeners` listeners, each possibly with connections waiting.
    pub(crate) fn new(listeners: usize) -> Accepting {
        Accepting {
            pending: vec![true; listeners],
            backoff: FIRST_BACKOFF,
            paused_until: None,
        }
    }

    /// The poll said listener `i` is readable.
    pub(crate) fn ready(&mut self, i: usize) {
        if let Some(p) = self.pending.get_mut(i) {
            *p = true;
        }
    }

    /// Until when accepting is paused after a failure, if it is.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Accepts on every listener that may have connections waiting, until
    /// each would block, `go_on` says stop, or an accept fails (then
    /// accepting pauses for a back-off that doubles from 10 ms to 1 s
    /// while failures last). `on_accept` gets the listener's index, the
    /// new (blocking) stream and its peer.
    pub(crate) fn accept_ready(
        &mut self,
        listeners: &[&Listener],
        go_on: impl Fn() -> bool,
        mut on_accept: impl FnMut(usize, Stream, Addr),
    ) {
        if let Some(until) = self.paused_until {
            if Instant::now() < until {
                return;
            }
            self.paused_until = None;
        }
        for (i, listener) in listeners.iter().enumerate() {
            while self.pending[i] && go_on() {
                match accept(listener) {
                    Ok((stream, peer)) => {
                        self.backoff = FIRST_BACKOFF;
                        on_accept(i, stream, peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.pending[i] = false,
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
                        let backoff = self.backoff;
                        if is_resource_exhaustion(&e) {
                            log::warn!("accept failed: {e}; pausing accepts for {backoff:?}");
                        } else {
                            log::error!("accept failed: {e}; pausing accepts for {backoff:?}");
                        }
                        self.paused_until = Some(Instant::now() + backoff);
                        self.backoff = (backoff * 2).min(MAX_BACKOFF);
                        return;
                    }
                }
            }
        }
    }
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
    let mut accepting = Accepting::new(listeners.len());
    while !stopper.is_stopped() {
        let timeout = accepting
            .paused_until()
            .map(|t| t.saturating_duration_since(Instant::now()));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() != WAKER {
                accepting.ready(event.token().0);
            }
        }
        accepting.accept_ready(listeners, || !stopper.is_stopped(), &mut on_accept);
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
