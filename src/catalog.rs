//! The protocols `spindle serve` knows by name, their default endpoints,
//! and how their factories are built from command-line options.
//!
//! This is the one place a new protocol is wired in: add its name to
//! [`NAMES`], its endpoint to [`default_endpoint`] and its factory to
//! [`build_factory`]. `spindle serve all` serves every name here.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::framing::line::DEFAULT_MAX_LINE_LENGTH;
use crate::framing::netstring::DEFAULT_MAX_NETSTRING_LENGTH;
use crate::framing::prefixed::DEFAULT_MAX_PREFIXED_LENGTH;
use crate::http::SiteConfigError;
use crate::protocol::Factory;
use crate::protocols::qotd::QuotesError;
use crate::protocols::{answer, chat, cmd, echo, int32_echo, netstring_echo, qotd, web, welcome};

/// Every protocol `spindle serve` can run, in `serve all` order.
pub const NAMES: &[&str] = &[
    "echo",
    "qotd",
    "welcome",
    "netstring-echo",
    "int32-echo",
    "chat",
    "answer",
    "cmd",
    "http",
];

/// How a protocol fares under `--model process`, where every connection
/// runs in a process of its own and nothing is shared between them. The
/// engine already warns about every factory whose
/// [`shares_state`](crate::Factory::shares_state) is true; this says what
/// the command line must add to that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessModelFit {
    /// Served; whatever sharing is lost, the engine's warning says.
    Served,
    /// Served, with this warning about an option that stops meaning
    /// anything.
    ServedWithWarning(&'static str),
    /// Not served, for this reason: the protocol is its sharing.
    Refused(&'static str),
}

/// How `name` fares under `--model process`. Welcome's count, QOTD's
/// rotation and the web counter lose their sharing and still make sense
/// (the loss is the lesson); a chat room of one shows nothing at all, so
/// chat is refused; cmd's `--max-clients` counts one client per process.
pub fn process_model_fit(name: &str) -> ProcessModelFit {
    match name {
        "chat" => ProcessModelFit::Refused(
            "chat cannot run under --model process: every connection would be alone in a room \
             of its own and never see another's line (use pool, thread or reactor)",
        ),
        "cmd" => ProcessModelFit::ServedWithWarning(
            "cmd: --max-clients limits nothing under --model process: each connection is the only \
             client of its own process; --max-connections bounds the children instead",
        ),
        _ => ProcessModelFit::Served,
    }
}

/// Options that only some protocols read.
#[derive(Debug, Clone, Default)]
pub struct ProtocolOptions {
    /// QOTD: a file of quotes, one per line (default: built-in quotes).
    pub quotes: Option<PathBuf>,
    /// netstring-echo, int32-echo: the longest string accepted (default
    /// 99999, Twisted's `MAX_LENGTH`).
    pub max_string_length: Option<usize>,
    /// Chat: the longest nick, in characters (default:
    /// [`chat_room::DEFAULT_MAX_NICK_LEN`](crate::protocols::chat_room::DEFAULT_MAX_NICK_LEN)).
    pub max_nick_len: Option<usize>,
    /// Chat: how long a member dropped as a slow consumer has to read what
    /// it was owed before it is aborted (default:
    /// [`chat_room::DEFAULT_DROP_GRACE`](crate::protocols::chat_room::DEFAULT_DROP_GRACE)).
    pub drop_grace: Option<std::time::Duration>,
    /// Chat, answer and cmd: the longest line, in bytes (default:
    /// [`DEFAULT_MAX_LINE_LENGTH`]).
    pub max_line_length: Option<usize>,
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
    /// How long a blocking job's result waits for room in a full
    /// connection inbox (default [`crate::deferred::DEFAULT_DELIVERY_TIMEOUT`]).
    pub delivery_timeout: Option<std::time::Duration>,
    /// cmd: how long `tail` may run (default [`cmd::LASTLOG_TIME_LIMIT`]).
    pub lastlog_timeout: Option<std::time::Duration>,
    /// cmd: hash on the connection's owner, not the blocking pool (for
    /// measuring what `defer_to_thread` saves; default off).
    pub comhash_inline: bool,
    /// cmd: how long `exit` waits for the answers still due (default
    /// [`cmd::EXIT_WAIT`]).
    pub exit_wait: Option<std::time::Duration>,
    /// http: the web server's limits and keep-alive policy.
    pub http: crate::http::SiteConfig,
}

/// Where `name` listens when no `--listen` is given.
pub fn default_endpoint(name: &str) -> Option<&'static str> {
    Some(match name {
        "echo" => echo::DEFAULT_ENDPOINT,
        "qotd" => qotd::DEFAULT_ENDPOINT,
        "welcome" => welcome::DEFAULT_ENDPOINT,
        "netstring-echo" => netstring_echo::DEFAULT_ENDPOINT,
        "int32-echo" => int32_echo::DEFAULT_ENDPOINT,
        "chat" => chat::DEFAULT_ENDPOINT,
        "answer" => answer::DEFAULT_ENDPOINT,
        "cmd" => cmd::DEFAULT_ENDPOINT,
        "http" => web::DEFAULT_ENDPOINT,
        _ => return None,
    })
}

/// Why [`build_factory`] built nothing. `Display` is one line naming the
/// command-line option or the name at fault.
#[derive(Debug)]
#[non_exhaustive]
pub enum CatalogError {
    /// No protocol has this name.
    UnknownProtocol {
        /// The name given.
        name: String,
    },
    /// An option that must be at least 1 was 0.
    Zero {
        /// The option, as on the command line (`--max-nick`).
        option: &'static str,
    },
    /// QOTD's quotes file could not be used.
    Quotes(QuotesError),
    /// The web server's limits are out of range.
    Http(SiteConfigError),
    /// The command server's blocking pool could not start.
    BlockingPool(io::Error),
    /// The command server could not be set up (its `--root`, say).
    Cmd(io::Error),
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::UnknownProtocol { name } => write!(
                f,
                "unknown protocol {name:?} (known: {}, all)",
                NAMES.join(", ")
            ),
            CatalogError::Zero { option } => write!(f, "{option} must be at least 1"),
            CatalogError::Quotes(e) => e.fmt(f),
            CatalogError::Http(e) => e.fmt(f),
            CatalogError::BlockingPool(e) | CatalogError::Cmd(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CatalogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CatalogError::UnknownProtocol { .. } | CatalogError::Zero { .. } => None,
            CatalogError::Quotes(e) => Some(e),
            CatalogError::Http(e) => Some(e),
            CatalogError::BlockingPool(e) | CatalogError::Cmd(e) => Some(e),
        }
    }
}

/// A factory for the protocol called `name`, or why not.
pub fn build_factory(
    name: &str,
    options: &ProtocolOptions,
) -> Result<Arc<dyn Factory>, CatalogError> {
    Ok(match name {
        "echo" => Arc::new(echo::factory()),
        "qotd" => match &options.quotes {
            Some(path) => {
                Arc::new(qotd::QotdFactory::from_file(path).map_err(CatalogError::Quotes)?)
            }
            None => Arc::new(qotd::QotdFactory::builtin()),
        },
        "welcome" => Arc::new(welcome::WelcomeFactory::default()),
        "netstring-echo" => Arc::new(netstring_echo::factory(
            options
                .max_string_length
                .unwrap_or(DEFAULT_MAX_NETSTRING_LENGTH),
        )),
        "int32-echo" => Arc::new(int32_echo::factory(
            options
                .max_string_length
                .unwrap_or(DEFAULT_MAX_PREFIXED_LENGTH),
        )),
        "chat" => {
            let defaults = chat::ChatConfig::default();
            let config = chat::ChatConfig {
                max_nick_len: options.max_nick_len.unwrap_or(defaults.max_nick_len),
                max_line_length: line_length(options)?,
                drop_grace: options.drop_grace.unwrap_or(defaults.drop_grace),
            };
            if config.max_nick_len == 0 {
                return Err(CatalogError::Zero {
                    option: "--max-nick",
                });
            }
            Arc::new(chat::ChatFactory::new(&config))
        }
        "answer" => Arc::new(answer::factory(line_length(options)?)),
        "cmd" => Arc::new(cmd_factory(options)?),
        "http" => {
            options.http.validate().map_err(CatalogError::Http)?;
            Arc::new(web::site(options.http.clone()))
        }
        other => {
            return Err(CatalogError::UnknownProtocol {
                name: other.to_string(),
            });
        }
    })
}

/// The line length limit for line protocols: the option, else Twisted's.
fn line_length(options: &ProtocolOptions) -> Result<usize, CatalogError> {
    match options.max_line_length {
        Some(0) => Err(CatalogError::Zero {
            option: "--max-line-length",
        }),
        Some(max) => Ok(max),
        None => Ok(DEFAULT_MAX_LINE_LENGTH),
    }
}

/// The command server, with a blocking pool of its own (the only protocol
/// here that needs one).
fn cmd_factory(options: &ProtocolOptions) -> Result<cmd::CmdFactory, CatalogError> {
    use crate::blocking::{BlockingPool, DEFAULT_BLOCKING_QUEUE, DEFAULT_BLOCKING_THREADS};
    let threads = options.blocking_threads.unwrap_or(DEFAULT_BLOCKING_THREADS);
    if threads == 0 {
        return Err(CatalogError::Zero {
            option: "--blocking-threads",
        });
    }
    let queue = options.blocking_queue.unwrap_or(DEFAULT_BLOCKING_QUEUE);
    let mut pool = BlockingPool::new(threads, queue).map_err(CatalogError::BlockingPool)?;
    if let Some(timeout) = options.delivery_timeout {
        pool = pool.with_delivery_timeout(timeout);
    }
    let defaults = cmd::CmdConfig::default();
    let config = cmd::CmdConfig {
        log_file: options.log_file.clone().unwrap_or(defaults.log_file),
        root: options.root.clone().unwrap_or(defaults.root),
        max_clients: options.max_clients.unwrap_or(defaults.max_clients),
        lastlog_time_limit: options
            .lastlog_timeout
            .unwrap_or(defaults.lastlog_time_limit),
        max_line_length: line_length(options)?,
        comhash_inline: options.comhash_inline,
        exit_wait: options.exit_wait.unwrap_or(defaults.exit_wait),
    };
    cmd::CmdFactory::new(config, Arc::new(pool)).map_err(CatalogError::Cmd)
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
        assert!(e.to_string().contains("gopher"), "{e}");
        assert!(matches!(e, CatalogError::UnknownProtocol { name } if name == "gopher"));
    }

    #[test]
    fn errors_carry_the_option_and_the_cause() {
        let zero_nick = ProtocolOptions {
            max_nick_len: Some(0),
            ..ProtocolOptions::default()
        };
        let Err(e) = build_factory("chat", &zero_nick) else {
            panic!("a zero nick length builds nothing")
        };
        assert_eq!(e.to_string(), "--max-nick must be at least 1");
        assert!(matches!(
            e,
            CatalogError::Zero {
                option: "--max-nick"
            }
        ));
        let mut few_header_bytes = ProtocolOptions::default();
        few_header_bytes.http.max_header_bytes = 10;
        let Err(e) = build_factory("http", &few_header_bytes) else {
            panic!("a 10-byte header cap builds nothing")
        };
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source, Some(e.to_string()));
        assert!(matches!(
            e,
            CatalogError::Http(SiteConfigError::MaxHeaderBytes { got: 10 })
        ));
    }

    #[test]
    fn factories_that_share_state_say_so_and_the_process_model_fit_follows() {
        let options = ProtocolOptions::default();
        for name in NAMES {
            let shares = build_factory(name, &options).unwrap().shares_state();
            let expected = matches!(*name, "qotd" | "welcome" | "chat" | "cmd" | "http");
            assert_eq!(shares, expected, "{name}");
            // Only a factory that shares state can lose anything.
            if !shares {
                assert_eq!(process_model_fit(name), ProcessModelFit::Served, "{name}");
            }
        }
        assert!(matches!(
            process_model_fit("chat"),
            ProcessModelFit::Refused(_)
        ));
        assert!(matches!(
            process_model_fit("cmd"),
            ProcessModelFit::ServedWithWarning(w) if w.contains("--max-clients")
        ));
    }
}
