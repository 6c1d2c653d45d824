//! [`Service`]: one listening socket and the factory that serves it — what
//! a [`Server`](super::Server) hands its engine. Kept apart from
//! `server.rs` so that the engines depend on it, not on the server that
//! runs them.

use std::sync::Arc;

use super::process::ChildCommand;
use crate::endpoint::Listener;
use crate::protocol::{Addr, Factory};

/// One listening socket and the factory that serves it.
pub(crate) struct Service {
    pub listener: Listener,
    pub factory: Arc<dyn Factory>,
    pub host: Addr,
    /// What serves one connection in a child process (the process model).
    pub child: Option<ChildCommand>,
}
