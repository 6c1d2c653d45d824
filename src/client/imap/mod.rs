//! An IMAP4rev1 client (RFC 3501), enough for the tutorial's "subject of
//! the first message" and a bit more: greeting, `CAPABILITY`, `LOGIN`,
//! `SELECT`, `FETCH n ENVELOPE`, `LOGOUT`.
//!
//! * [`parse`]: the response parser, sans-IO, fed in any chunking, with
//!   quoted strings, bounded literals `{n}`, NIL and lists.
//! * [`encoded_word`]: RFC 2047 decoding of header text.
//! * [`envelope`]: a FETCH's ENVELOPE as subject, from, to, date.
//! * [`session`]: the [`ImapClient`] protocol and the blocking
//!   [`ImapSession`] over it (every operation timed).
//!
//! ```no_run
//! use spindle::client::imap::{ImapOptions, ImapSession};
//! use spindle::client::{ClientConfig, ClientEndpoint};
//!
//! let endpoint = ClientEndpoint::parse("tls:imap.example.com:993")?;
//! let mut s = ImapSession::connect(&endpoint, ClientConfig::default(), ImapOptions::default())?;
//! s.login("user", b"password")?;
//! if s.select("INBOX")?.exists > 0 {
//!     let envelope = s.fetch_envelope(1)?;
//!     println!("First message subject: {}", envelope.subject.unwrap_or_default());
//! }
//! s.logout()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod encoded_word;
pub mod envelope;
pub mod parse;
pub mod session;

pub use envelope::{Address, Envelope};
pub use session::{Arg, ImapClient, ImapError, ImapOptions, ImapSession, Mailbox, Reply};
