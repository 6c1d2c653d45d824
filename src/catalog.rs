//! The protocols `spindle serve` knows by name, their default endpoints,
//! and how their factories are built from command-line options.
//!
//! This is the one place a new protocol is wired in: add its name to
//! [`NAMES`], its endpoint to [`default_endpoint`] and its factory to
//! [`build_factory`]. `spindle serve all` serves every name here.

use std::path::PathBuf;
use std::sync::Arc;

use crate::protocol::Factory;
use crate::protocols::{echo, qotd, web, welcome};

/// Every protocol `spindle serve` can run, in `serve all` order.
pub const NAMES: &[&str] = &["echo", "qotd", "welcome", "http"];

/// Options that only some protocols read.
#[derive(Debug, Clone, Default)]
pub struct ProtocolOptions {
    /// QOTD: a file of quotes, one per line (default: built-in quotes).
    pub quotes: Option<PathBuf>,
    /// http: the web server's limits and keep-alive policy.
    pub http: crate::http::SiteConfig,
}

/// Where `name` listens when no `--listen` is given.
pub fn default_endpoint(name: &str) -> Option<&'static str> {
    Some(match name {
        "echo" => echo::DEFAULT_ENDPOINT,
        "qotd" => qotd::DEFAULT_ENDPOINT,
        "welcome" => welcome::DEFAULT_ENDPOINT,
        "http" => web::DEFAULT_ENDPOINT,
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
        "http" => {
            options.http.validate()?;
            Arc::new(web::site(options.http.clone()))
        }
        other => {
            return Err(format!(
                "unknown protocol {other:?} (known: {}, all)",
                NAMES.join(", ")
            ));
        }
    })
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
