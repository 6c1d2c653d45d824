//! The protocols `spindle serve` knows by name, their default endpoints,
//! and how their factories are built from command-line options.
//!
//! This is the one place a new protocol is wired in: add its name to
//! [`NAMES`], its endpoint to [`default_endpoint`] and its factory to
//! [`build_factory`]. `spindle serve all` serves every name here.

use std::path::PathBuf;
use std::sync::Arc;

use crate::protocol::Factory;
use crate::protocols::{cmd, echo, qotd, welcome};

/// Every protocol `spindle serve` can run, in `serve all` order.
pub const NAMES: &[&str] = &["echo", "qotd", "welcome", "cmd"];

/// Options that only some protocols read.
#[derive(Debug, Clone, Default)]
pub struct ProtocolOptions {
    /// QOTD: a file of quotes, one per line (default: built-in quotes).
    pub quotes: Option<PathBuf>,
    /// cmd: the file `lastlog` tails (default [`cmd::DEFAULT_LOG_FILE`]).
    pub log_file: Option<PathBuf>,
    /// cmd: the directory `comhash` is confined to (default: the current
    /// directory).
    pub root: Option<PathBuf>,
    /// cmd: clients served at once (default [`cmd::DEFAULT_MAX_CLIENTS`]).
    pub max_clients: Option<usize>,
    /// Threads of the blocking pool (default
    /// [`crate::blocking::DEFAULT_BLOCKING_THREADS`]).
    pub blocking_threads: Option<usize>,
    /// Jobs waiting for the blocking pool (default
    /// [`crate::blocking::DEFAULT_BLOCKING_QUEUE`]).
    pub blocking_queue: Option<usize>,
}

/// Where `name` listens when no `--listen` is given.
pub fn default_endpoint(name: &str) -> Option<&'static str> {
    Some(match name {
        "echo" => echo::DEFAULT_ENDPOINT,
        "qotd" => qotd::DEFAULT_ENDPOINT,
        "welcome" => welcome::DEFAULT_ENDPOINT,
        "cmd" => cmd::DEFAULT_ENDPOINT,
        _ => return None,
    })
}

/// A factory for the protocol called `name`, or a one-line reason why not.
pub fn build_factory(name: &str, options: &ProtocolOptions) -> Result<Arc<dyn Factory>, String> {
    Ok(match name {
        "echo" => Arc::new(echo::factory()),
        "qotd" => match &options.quotes {
            Some(path) => Arc::new(qotd::QotdFactory::from_file(path).map_err(|e| e.to_string())?),
            None => Arc::new(qotd::QotdFactory::builtin()),
        },
        "welcome" => Arc::new(welcome::WelcomeFactory::default()),
        "cmd" => Arc::new(cmd_factory(options)?),
        other => {
            return Err(format!(
                "unknown protocol {other:?} (known: {}, all)",
                NAMES.join(", ")
            ));
        }
    })
}

/// The command server, with a blocking pool of its own (the only protocol
/// here that needs one).
fn cmd_factory(options: &ProtocolOptions) -> Result<cmd::CmdFactory, String> {
    use crate::blocking::{BlockingPool, DEFAULT_BLOCKING_QUEUE, DEFAULT_BLOCKING_THREADS};
    let threads = options.blocking_threads.unwrap_or(DEFAULT_BLOCKING_THREADS);
    if threads == 0 {
        return Err("--blocking-threads must be at least 1".into());
    }
    let queue = options.blocking_queue.unwrap_or(DEFAULT_BLOCKING_QUEUE);
    let pool = BlockingPool::new(threads, queue).map_err(|e| e.to_string())?;
    let defaults = cmd::CmdConfig::default();
    let config = cmd::CmdConfig {
        log_file: options.log_file.clone().unwrap_or(defaults.log_file),
        root: options.root.clone().unwrap_or(defaults.root),
        max_clients: options.max_clients.unwrap_or(defaults.max_clients),
    };
    cmd::CmdFactory::new(config, Arc::new(pool)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_an_endpoint_and_a_factory() {
        for name in NAMES {
            let ep = default_endpoint(name).unwrap();
            crate::Endpoint::parse(ep).unwrap();
            build_factory(name, &ProtocolOptions::default()).unwrap();
        }
        let Err(e) = build_factory("gopher", &ProtocolOptions::default()) else {
            panic!("an unknown name builds nothing")
        };
        assert!(e.contains("gopher"), "{e}");
    }
}
