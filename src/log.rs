//! Twisted-style log lines on top of `log` and `env_logger`.
//!
//! ```text
//! 2026-11-23 08:51:48+0000 [-] EchoFactory starting on 0.0.0.0:1234
//! 2026-11-23 08:51:50+0000 [Echo,0,127.0.0.1] connection lost: Connection was closed cleanly.
//! ```
//!
//! The bracketed part is the *log context*: `-` outside any connection, and
//! `Protocol,session,peer_ip` while an engine runs one of a connection's
//! callbacks. Engines set it with [`ContextGuard`]; protocols just call
//! `log::info!` and get the right prefix. `RUST_LOG` picks the level
//! (default `info`).

use std::cell::RefCell;
use std::io::Write;

thread_local! {
    static CONTEXT: RefCell<String> = RefCell::new(String::from("-"));
}

/// Sets this thread's log context until dropped, then restores the old one.
pub struct ContextGuard {
    previous: String,
}

impl ContextGuard {
    /// Makes `context` the prefix of every log line this thread writes.
    pub fn enter(context: impl Into<String>) -> Self {
        let previous = CONTEXT.with(|c| std::mem::replace(&mut *c.borrow_mut(), context.into()));
        ContextGuard { previous }
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let previous = std::mem::take(&mut self.previous);
        CONTEXT.with(|c| *c.borrow_mut() = previous);
    }
}

/// This thread's current log context.
pub fn context() -> String {
    CONTEXT.with(|c| c.borrow().clone())
}

/// The context of a server connection: `Echo,3,127.0.0.1`.
pub fn connection_context(protocol: &str, session: u64, peer_host: &str) -> String {
    format!("{protocol},{session},{peer_host}")
}

/// Installs the Twisted-format logger on stderr. `RUST_LOG` overrides the
/// default level of `info`. Calling it twice is harmless.
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format(|buf, record| {
            let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S%z");
            let text = record.args().to_string().replace('\n', "\n\t");
            CONTEXT.with(|c| writeln!(buf, "{now} [{}] {text}", c.borrow()))
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_nest_and_restore() {
        assert_eq!(context(), "-");
        {
            let _a = ContextGuard::enter(connection_context("Echo", 0, "127.0.0.1"));
            assert_eq!(context(), "Echo,0,127.0.0.1");
            {
                let _b = ContextGuard::enter("Inner");
                assert_eq!(context(), "Inner");
            }
            assert_eq!(context(), "Echo,0,127.0.0.1");
        }
        assert_eq!(context(), "-");
    }
}
