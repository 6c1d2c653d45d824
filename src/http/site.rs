//! [`Site`]: the HTTP factory — a root [`Resource`] and the limits every
//! connection is held to (Twisted's `twisted.web.server.Site`).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::channel::HttpChannel;
use super::config::SiteConfig;
use super::resource::Resource;
use crate::protocol::{Addr, Factory, Protocol, Refusal};

/// Serves one resource over HTTP/1.1; builds an [`HttpChannel`] per
/// connection. `Site` in logs, as in Twisted.
#[derive(Clone)]
pub struct Site {
    resource: Arc<dyn Resource>,
    config: Arc<SiteConfig>,
    /// Connections given up for waiting ones, not yet closed.
    releasing: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("config", &self.config)
            .finish()
    }
}

impl Site {
    /// A site answering every request with `resource`.
    pub fn new(resource: impl Resource, config: SiteConfig) -> Site {
        Site::from_arc(Arc::new(resource), config)
    }

    /// As [`Site::new`], for a resource already shared.
    pub fn from_arc(resource: Arc<dyn Resource>, config: SiteConfig) -> Site {
        Site {
            resource,
            config: Arc::new(config),
            releasing: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The limits.
    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    /// A channel for one connection (what `build_protocol` boxes).
    pub fn channel(&self) -> HttpChannel {
        HttpChannel::new(self.resource.clone(), self.config.clone())
            .with_release_count(self.releasing.clone())
    }
}

impl Factory for Site {
    fn name(&self) -> &str {
        "Site"
    }

    fn build_protocol(&self, _peer: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        Ok(Box::new(self.channel()))
    }

    /// A site's resource may hold state every connection shares (the web
    /// counter does), so a site says it shares state.
    fn shares_state(&self) -> bool {
        true
    }

    fn busy_message(&self) -> Option<&[u8]> {
        Some(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\
              Connection: close\r\nRetry-After: 1\r\n\r\nserver busy, retry.\n",
        )
    }
}
