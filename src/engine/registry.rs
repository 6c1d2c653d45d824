//! [`Registry`]: the open connections of a server, so that shutdown can
//! wake every one of them, even those blocked in `read`.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Open sockets by id. A socket is unregistered *before* it is closed, and
/// shut down only under the lock, so a descriptor number reused by a new
/// socket is never touched.
#[derive(Default)]
pub struct Registry {
    fds: Mutex<HashMap<u64, RawFd>>,
    next: AtomicU64,
}

impl Registry {
    /// Adds an open socket; returns its id.
    pub fn register(&self, fd: RawFd) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut fds) = self.fds.lock() {
            fds.insert(id, fd);
        }
        id
    }

    /// Removes a socket; call before closing it.
    pub fn unregister(&self, id: u64) {
        if let Ok(mut fds) = self.fds.lock() {
            fds.remove(&id);
        }
    }

    /// Shuts down the read side of every socket (blocked readers see EOF;
    /// writes still work) or, with `both`, both sides (blocked writers fail
    /// too). Returns how many sockets it touched.
    pub fn shutdown_all(&self, both: bool) -> usize {
        let how = if both { libc::SHUT_RDWR } else { libc::SHUT_RD };
        let Ok(fds) = self.fds.lock() else { return 0 };
        for fd in fds.values() {
            // SAFETY: the fd is open while it is in the map (see type docs);
            // shutdown does not close it or touch memory.
            unsafe {
                libc::shutdown(*fd, how);
            }
        }
        fds.len()
    }

    /// Shuts down both sides of one socket, if it is still registered.
    pub fn kill(&self, id: u64) {
        if let Ok(fds) = self.fds.lock()
            && let Some(fd) = fds.get(&id)
        {
            // SAFETY: as in `shutdown_all`.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RDWR);
            }
        }
    }
}
