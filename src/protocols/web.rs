//! The tutorial's web counter: every `GET`, on any path, answers
//! `I am request #N`, N counting from 1 across every connection.
//!
//! ```text
//! $ curl http://localhost:8080/
//! I am request #1
//! ```
//!
//! `HEAD` renders `GET` without sending the body, so it counts too, as in
//! Twisted (whose `render_HEAD` calls `render_GET`). Other methods get
//! `405` with `Allow: GET, HEAD`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::{Rendered, Request, Resource, Response, Site, SiteConfig};

/// Where `spindle serve http` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:8080";

/// Counts requests; shared by every connection of its site.
#[derive(Debug, Default)]
pub struct Counter {
    count: AtomicU64,
}

impl Counter {
    /// Requests counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Resource for Counter {
    fn allowed_methods(&self) -> &'static str {
        "GET, HEAD"
    }

    fn render_get(&self, _request: &Request<'_>, response: &mut Response) -> Rendered {
        // fetch_add hands every request its own number: none twice, none skipped.
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut rest = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        response.write(b"I am request #");
        response.write(&digits[i..]);
        response.write(b"\n");
        Rendered::Done
    }
}

/// The counter's site (`Site` in logs), with `config`'s limits.
pub fn site(config: SiteConfig) -> Site {
    Site::from_arc(Arc::new(Counter::default()), config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, outputs_for_every_chunking};

    /// The output with the `Date:` value blanked: it may tick between runs.
    fn undated(output: &[u8]) -> String {
        let text = String::from_utf8_lossy(output);
        text.split("\r\n")
            .map(|line| {
                if line.starts_with("Date: ") {
                    "Date: -"
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[test]
    fn counts_across_connections() {
        let site = site(SiteConfig::default());
        for n in 1..=3 {
            let mut h = Harness::new(site.channel());
            h.connect();
            h.feed(b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n");
            let text = h.take_text();
            assert!(
                text.ends_with(&format!("\r\n\r\nI am request #{n}\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn same_for_every_chunking() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
        let outcomes = outputs_for_every_chunking(|| site(SiteConfig::default()).channel(), input);
        let text = undated(&outcomes[0].1.output);
        for (chunk, outcome) in &outcomes {
            assert_eq!(undated(&outcome.output), text, "chunk size {chunk}");
            assert_eq!(outcome.closing, crate::Closing::No);
        }
        assert!(text.contains("Content-Length: 16\r\n"), "{text}");
        assert!(text.contains("I am request #1\n"));
        assert!(!text.contains("#2\n"), "HEAD sends no body: {text}");
    }
}
