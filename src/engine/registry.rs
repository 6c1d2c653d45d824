//! [`Registry`]: the open connections of a server, so that shutdown can
//! wake every one of them, even those blocked in `read`.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Open sockets by id, each with a flag its owner raises while it waits for
/// input (idle). A socket is unregistered *before* it is closed, and shut
/// down only under the lock, so a descriptor number reused by a new socket
/// is never touched.
#[derive(Default)]
pub struct Registry {
    fds: Mutex<HashMap<u64, (RawFd, Arc<AtomicBool>)>>,
    next: AtomicU64,
}

impl Registry {
    /// Adds an open socket and its owner's idle flag; returns its id.
    pub fn register(&self, fd: RawFd, idle: Arc<AtomicBool>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut fds) = self.fds.lock() {
            fds.insert(id, (fd, idle));
        }
        id
    }

    /// Removes a socket; call before closing it.
    pub fn unregister(&self, id: u64) {
        if let Ok(mut fds) = self.fds.lock() {
            fds.remove(&id);
        }
    }

    /// Wakes the owners waiting for input by shutting down the read side of
    /// their sockets (they see EOF; writes still work). Busy owners are left
    /// alone: they see the stop signal when their callback and its writes
    /// are done. Owners raise their idle flag *before* checking the stop
    /// signal, and the signal is raised before this runs, so no owner can
    /// slip into a read unwoken. Returns how many sockets are open.
    pub fn wake_idle(&self) -> usize {
        let Ok(fds) = self.fds.lock() else { return 0 };
        for (fd, idle) in fds.values() {
            if idle.load(Ordering::SeqCst) {
                // SAFETY: the fd is open while it is in the map (see type
                // docs); shutdown does not close it or touch memory.
                unsafe {
                    libc::shutdown(*fd, libc::SHUT_RD);
                }
            }
        }
        fds.len()
    }

    /// Shuts down both sides of every socket: blocked readers and writers
    /// fail at once. For when the grace period is over. Returns how many.
    pub fn shutdown_all(&self) -> usize {
        let Ok(fds) = self.fds.lock() else { return 0 };
        for (fd, _) in fds.values() {
            // SAFETY: as in `wake_idle`.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RDWR);
            }
        }
        fds.len()
    }

    /// Shuts down both sides of one socket, if it is still registered.
    pub fn kill(&self, id: u64) {
        if let Ok(fds) = self.fds.lock()
            && let Some((fd, _)) = fds.get(&id)
        {
            // SAFETY: as in `shutdown_all`.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RDWR);
            }
        }
    }
}
