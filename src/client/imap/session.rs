//! The IMAP4 client: [`ImapClient`], the protocol (sans-IO, run on the
//! connection's owner like any other), and [`ImapSession`], a blocking
//! front for it — send a command, wait (bounded) for its tagged answer.
//!
//! One command at a time: untagged responses that arrive while a command
//! runs belong to it; a tagged `NO` or `BAD` is an error carrying the
//! server's text. A literal is announced with `{n}` and sent after the
//! server's `+`, or at once with `{n+}` when the server has `LITERAL+`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::envelope::Envelope;
use super::parse::{
    DEFAULT_MAX_LINE, DEFAULT_MAX_LITERAL, ParseError, Response, ResponseParser, Status, StatusText,
};
use crate::client::{
    ClientConfig, ClientEndpoint, ClientFactory, ConnectError, Connector, connect,
};
use crate::protocol::{Addr, Protocol, Reason};
use crate::transport::Transport;

/// Default time one command (or the greeting) may take.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on untagged responses collected for one command.
pub const DEFAULT_MAX_UNTAGGED: usize = 100_000;

/// The bounds and timeouts of an IMAP session.
#[derive(Debug, Clone)]
pub struct ImapOptions {
    /// Time for the greeting after connecting, and for each command.
    pub command_timeout: Duration,
    /// Largest literal accepted from the server.
    pub max_literal: usize,
    /// Longest response line accepted.
    pub max_line: usize,
    /// Most untagged responses kept for one command.
    pub max_untagged: usize,
}

impl Default for ImapOptions {
    fn default() -> Self {
        ImapOptions {
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_literal: DEFAULT_MAX_LITERAL,
            max_line: DEFAULT_MAX_LINE,
            max_untagged: DEFAULT_MAX_UNTAGGED,
        }
    }
}

/// Why an IMAP operation failed. One line of text each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapError {
    /// Connecting failed (refused, DNS, TLS, timeout).
    Connect(ConnectError),
    /// The server sent something we cannot parse, or over a bound.
    Parse(ParseError),
    /// The command failed (`NO`): its name and the server's text.
    No {
        /// The command (`LOGIN`).
        command: String,
        /// The server's words, with the response code if any.
        text: String,
    },
    /// The server rejected the command as malformed (`BAD`).
    Bad {
        /// The command.
        command: String,
        /// The server's words.
        text: String,
    },
    /// The server said goodbye (`BYE`) at the greeting.
    Bye(String),
    /// The connection closed; the text says when and what the server said.
    Closed(String),
    /// No answer in time.
    TimedOut {
        /// What was waited for (`the greeting`, `LOGIN`).
        step: String,
        /// The timeout.
        after: Duration,
    },
    /// The answer made no sense for the question (no such message...).
    Protocol(String),
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImapError::Connect(e) => e.fmt(f),
            ImapError::Parse(e) => e.fmt(f),
            ImapError::No { command, text } => write!(f, "{command} failed: {text}"),
            ImapError::Bad { command, text } => {
                write!(f, "{command} rejected by the server: {text}")
            }
            ImapError::Bye(text) => write!(f, "the server refused the session: {text}"),
            ImapError::Closed(why) => write!(f, "the connection closed {why}"),
            ImapError::TimedOut { step, after } => {
                write!(f, "no answer to {step} within {after:?}")
            }
            ImapError::Protocol(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ImapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImapError::Connect(e) => Some(e),
            ImapError::Parse(e) => Some(e),
            _ => None,
        }
    }
}

/// A command's answer: the untagged responses it brought, and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Untagged responses received while the command ran.
    pub untagged: Vec<Response>,
    /// The tagged status (or the greeting).
    pub status: StatusText,
}

type Outcome = Result<Reply, ImapError>;

struct InFlight {
    tag: String,
    name: String,
    /// Parts still to send, each after a `+` from the server.
    rest: VecDeque<Vec<u8>>,
    untagged: Vec<Response>,
}

/// The IMAP4 client protocol. Reports the greeting and each command's
/// outcome on a channel; commands come in through its connection's handle
/// ([`ImapClient::start`]).
pub struct ImapClient {
    parser: ResponseParser,
    events: Sender<Outcome>,
    greeted: bool,
    in_flight: Option<InFlight>,
    bye: Option<String>,
    max_untagged: usize,
}

impl ImapClient {
    /// A client reporting on `events`, with `options`' bounds.
    pub fn new(events: Sender<Outcome>, options: &ImapOptions) -> Self {
        ImapClient {
            parser: ResponseParser::new(options.max_literal, options.max_line),
            events,
            greeted: false,
            in_flight: None,
            bye: None,
            max_untagged: options.max_untagged,
        }
    }

    /// Sends a command: `parts[0]` now, each later part after a `+`.
    pub fn start(&mut self, tag: String, name: String, parts: Vec<Vec<u8>>, t: &mut Transport) {
        if self.in_flight.is_some() || !self.greeted {
            let _ = self.events.try_send(Err(ImapError::Protocol(format!(
                "{name}: another command is still running"
            ))));
            return;
        }
        let mut rest: VecDeque<Vec<u8>> = parts.into();
        if let Some(first) = rest.pop_front() {
            t.write(&first);
        }
        self.in_flight = Some(InFlight {
            tag,
            name,
            rest,
            untagged: Vec::new(),
        });
    }

    /// Whether someone waits for an outcome (the greeting or a command).
    fn waiting(&self) -> bool {
        !self.greeted || self.in_flight.is_some()
    }

    /// Reports `outcome` to the waiter, once.
    fn report(&mut self, outcome: Outcome) {
        if self.waiting() {
            self.greeted = true;
            self.in_flight = None;
            let _ = self.events.try_send(outcome);
        }
    }

    fn handle(&mut self, response: Response, t: &mut Transport) {
        if !self.greeted {
            let outcome = match response {
                Response::Status(s) if matches!(s.status, Status::Ok | Status::Preauth) => {
                    Ok(Reply {
                        untagged: Vec::new(),
                        status: s,
                    })
                }
                Response::Status(s) if s.status == Status::Bye => {
                    t.lose_connection();
                    Err(ImapError::Bye(s.text))
                }
                other => {
                    t.abort_connection();
                    Err(ImapError::Protocol(format!(
                        "not an IMAP greeting: {other:?}"
                    )))
                }
            };
            self.report(outcome);
            return;
        }
        match response {
            Response::Continue(text) => {
                match self.in_flight.as_mut().and_then(|f| f.rest.pop_front()) {
                    Some(part) => t.write(&part),
                    None => log::debug!("a continuation nobody asked for: {text}"),
                }
            }
            Response::Tagged { tag, status } => {
                let Some(flight) = self.in_flight.take_if(|f| f.tag == tag) else {
                    log::warn!("a tagged response for no command of ours: {tag}");
                    return;
                };
                let text = match &status.code {
                    Some(code) => format!("[{code}] {}", status.text),
                    None => status.text.clone(),
                };
                let outcome = match status.status {
                    Status::Ok => Ok(Reply {
                        untagged: flight.untagged,
                        status,
                    }),
                    Status::No => Err(ImapError::No {
                        command: flight.name,
                        text,
                    }),
                    _ => Err(ImapError::Bad {
                        command: flight.name,
                        text,
                    }),
                };
                let _ = self.events.try_send(outcome);
            }
            other => {
                if let Response::Status(s) = &other
                    && s.status == Status::Bye
                {
                    self.bye = Some(s.text.clone());
                }
                match self.in_flight.as_mut() {
                    Some(flight) if flight.untagged.len() >= self.max_untagged => {
                        let max = self.max_untagged;
                        t.abort_connection();
                        self.report(Err(ImapError::Protocol(format!(
                            "more than {max} untagged responses to one command"
                        ))));
                    }
                    Some(flight) => flight.untagged.push(other),
                    None => log::debug!("unsolicited: {other:?}"),
                }
            }
        }
    }
}

impl Protocol for ImapClient {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.parser.feed(data);
        loop {
            match self.parser.next_response() {
                Ok(Some(response)) => {
                    self.handle(response, t);
                    if t.is_disconnecting() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    log::debug!("{e}; closing");
                    t.abort_connection();
                    self.report(Err(ImapError::Parse(e)));
                    return;
                }
            }
        }
    }

    fn connection_lost(&mut self, reason: &Reason) {
        if !self.waiting() {
            return;
        }
        let when = match &self.in_flight {
            None => "before the greeting".to_string(),
            Some(f) if self.parser.has_partial() => format!("mid-response to {}", f.name),
            Some(f) => format!("before {} was answered", f.name),
        };
        let why = match (&self.bye, reason) {
            (Some(bye), _) => format!("{when} (the server said: {bye})"),
            (None, Reason::Done) => when,
            (None, other) => format!("{when} ({other})"),
        };
        self.report(Err(ImapError::Closed(why)));
    }
}

struct ImapFactory {
    events: Sender<Outcome>,
    options: ImapOptions,
}

impl ClientFactory for ImapFactory {
    fn name(&self) -> &str {
        "IMAP4ClientFactory"
    }
    fn build_protocol(&self, _peer: &Addr) -> Box<dyn Protocol> {
        Box::new(ImapClient::new(self.events.clone(), &self.options))
    }
    fn client_connection_failed(&self, _: &Connector, reason: &ConnectError) {
        let _ = self
            .events
            .try_send(Err(ImapError::Connect(reason.clone())));
    }
}

/// An argument of a command.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Sent as it is (a number, a sequence set, a keyword).
    Atom(String),
    /// Sent as a quoted string, or as a literal when it must be.
    Str(Vec<u8>),
}

/// A quoted string if the bytes allow one, else `None` (use a literal).
fn quoted(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() > 1000
        || bytes
            .iter()
            .any(|&b| b == 0 || b == b'\r' || b == b'\n' || b > 0x7f)
    {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'"');
    for &b in bytes {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    Some(out)
}

/// The parts of a command: each part after the first waits for a `+`,
/// unless `literal_plus`, when there is one part.
fn command_parts(tag: &str, name: &str, args: &[Arg], literal_plus: bool) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut current = format!("{tag} {name}").into_bytes();
    for arg in args {
        current.push(b' ');
        match arg {
            Arg::Atom(a) => current.extend_from_slice(a.as_bytes()),
            Arg::Str(s) => match quoted(s) {
                Some(q) => current.extend_from_slice(&q),
                None if literal_plus => {
                    current.extend_from_slice(format!("{{{}+}}\r\n", s.len()).as_bytes());
                    current.extend_from_slice(s);
                }
                None => {
                    current.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
                    parts.push(std::mem::take(&mut current));
                    current.extend_from_slice(s);
                }
            },
        }
    }
    current.extend_from_slice(b"\r\n");
    parts.push(current);
    parts
}

/// What `SELECT` told about a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Messages in it.
    pub exists: u32,
    /// Whether it was opened read-only.
    pub read_only: bool,
}

/// A blocking IMAP session over [`ImapClient`]; see the [module docs](self).
pub struct ImapSession {
    connector: Connector,
    events: Receiver<Outcome>,
    /// The connection's own sender, for [`Unrun`].
    outcomes: Sender<Outcome>,
    next_tag: u32,
    options: ImapOptions,
    capabilities: Vec<String>,
    dead: bool,
}

impl fmt::Debug for ImapSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapSession")
            .field("connector", &self.connector)
            .field("next_tag", &self.next_tag)
            .finish()
    }
}

/// Travels with a command to the connection's owner: dropped without having
/// run (the connection ended first), it tells the waiting session, which
/// would otherwise wait out its command timeout.
struct Unrun {
    outcomes: Option<Sender<Outcome>>,
    name: String,
}

impl Unrun {
    /// The command ran: nothing to tell.
    fn disarm(&mut self) {
        self.outcomes = None;
    }
}

impl Drop for Unrun {
    fn drop(&mut self) {
        if let Some(outcomes) = self.outcomes.take() {
            let _ = outcomes.try_send(Err(ImapError::Closed(format!(
                "before {} was sent",
                self.name
            ))));
        }
    }
}

fn capabilities_of(status: &StatusText) -> Option<Vec<String>> {
    let code = status.code.as_deref()?;
    let (word, rest) = code.split_once(' ')?;
    word.eq_ignore_ascii_case("CAPABILITY")
        .then(|| rest.split_ascii_whitespace().map(str::to_string).collect())
}

impl ImapSession {
    /// Connects and waits for the greeting.
    pub fn connect(
        endpoint: &ClientEndpoint,
        config: ClientConfig,
        options: ImapOptions,
    ) -> Result<Self, ImapError> {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let factory = ImapFactory {
            events: tx.clone(),
            options: options.clone(),
        };
        let connector = connect(endpoint, Arc::new(factory), config);
        let mut session = ImapSession {
            connector,
            events: rx,
            outcomes: tx,
            next_tag: 1,
            options,
            capabilities: Vec::new(),
            dead: false,
        };
        let greeting = session.wait(
            "the greeting",
            endpoint.timeout() + session.options.command_timeout,
        )?;
        session.capabilities = capabilities_of(&greeting.status).unwrap_or_default();
        Ok(session)
    }

    fn wait(&mut self, step: &str, timeout: Duration) -> Result<Reply, ImapError> {
        let outcome = match self.events.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => Err(ImapError::TimedOut {
                step: step.to_string(),
                after: timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(ImapError::Closed("unexpectedly".into())),
        };
        if let Err(e) = &outcome
            && !matches!(e, ImapError::No { .. } | ImapError::Bad { .. })
        {
            self.close_now();
        }
        outcome
    }

    fn close_now(&mut self) {
        self.dead = true;
        self.connector.stop_connecting();
        if let Some(h) = self.connector.handle() {
            h.abort_connection();
        }
    }

    /// The capabilities the server announced (greeting or `CAPABILITY`).
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    fn has(&self, capability: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(capability))
    }

    /// Sends a command and waits for its tagged answer.
    pub fn command(&mut self, name: &str, args: &[Arg]) -> Result<Reply, ImapError> {
        if self.dead {
            return Err(ImapError::Closed("earlier; the session is over".into()));
        }
        let tag = format!("A{:04}", self.next_tag);
        self.next_tag += 1;
        let parts = command_parts(&tag, name, args, self.has("LITERAL+"));
        let Some(handle) = self.connector.handle() else {
            self.dead = true;
            return Err(ImapError::Closed(format!("before {name} was sent")));
        };
        let owned_name = name.to_string();
        // The connection may end between the handle lookup and the call's
        // turn on the owner; then the call is dropped unrun, and says so
        // (crossbeam drops a queued message when the channel's last sender
        // or receiver goes, whichever is later).
        let mut unrun = Unrun {
            outcomes: Some(self.outcomes.clone()),
            name: name.to_string(),
        };
        let sent = handle.call(move |p: &mut ImapClient, t| {
            unrun.disarm();
            p.start(tag, owned_name, parts, t)
        });
        // Let go of the inbox at once: a command queued as the connection
        // ended is dropped (and `Unrun` speaks) only when its channel is,
        // and a handle kept through the wait would keep the channel alive.
        drop(handle);
        if sent.is_err() {
            self.dead = true;
            return Err(ImapError::Closed(format!("before {name} was sent")));
        }
        let reply = self.wait(name, self.options.command_timeout)?;
        if let Some(caps) = capabilities_of(&reply.status) {
            self.capabilities = caps;
        }
        Ok(reply)
    }

    /// `CAPABILITY`: asks the server what it supports.
    pub fn capability(&mut self) -> Result<Vec<String>, ImapError> {
        let reply = self.command("CAPABILITY", &[])?;
        for r in reply.untagged {
            if let Response::Capability(caps) = r {
                self.capabilities = caps;
            }
        }
        Ok(self.capabilities.clone())
    }

    /// `LOGIN user password` (quoted, or literals where needed).
    pub fn login(&mut self, user: &str, password: &[u8]) -> Result<(), ImapError> {
        if self.capabilities.is_empty() {
            self.capability()?;
        }
        if self.has("LOGINDISABLED") {
            return Err(ImapError::Protocol(
                "the server refuses LOGIN here (LOGINDISABLED): connect with tls:".into(),
            ));
        }
        self.command(
            "LOGIN",
            &[
                Arg::Str(user.as_bytes().to_vec()),
                Arg::Str(password.to_vec()),
            ],
        )?;
        Ok(())
    }

    /// `SELECT mailbox`: opens it, returns its message count.
    pub fn select(&mut self, mailbox: &str) -> Result<Mailbox, ImapError> {
        let reply = self.command("SELECT", &[Arg::Str(mailbox.as_bytes().to_vec())])?;
        let exists = reply
            .untagged
            .iter()
            .find_map(|r| match r {
                Response::Count { n, what } if what == "EXISTS" => Some(*n),
                _ => None,
            })
            .ok_or_else(|| {
                ImapError::Protocol(format!("SELECT {mailbox}: the server sent no EXISTS count"))
            })?;
        let read_only = reply
            .status
            .code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("READ-ONLY"));
        Ok(Mailbox { exists, read_only })
    }

    /// `FETCH n ENVELOPE`: message `n`'s envelope, subject decoded.
    pub fn fetch_envelope(&mut self, seq: u32) -> Result<Envelope, ImapError> {
        let reply = self.command(
            "FETCH",
            &[Arg::Atom(seq.to_string()), Arg::Atom("ENVELOPE".into())],
        )?;
        let value = reply
            .untagged
            .iter()
            .find_map(|r| match r {
                Response::Fetch { seq: s, items } if *s == seq => items
                    .iter()
                    .find(|(name, _)| name == "ENVELOPE")
                    .map(|(_, v)| v),
                _ => None,
            })
            .ok_or_else(|| {
                ImapError::Protocol(format!("FETCH {seq}: the server sent no ENVELOPE"))
            })?;
        Envelope::from_value(value).map_err(ImapError::Parse)
    }

    /// `LOGOUT`, then waits (bounded) for the server to close.
    pub fn logout(mut self) -> Result<(), ImapError> {
        let result = self.command("LOGOUT", &[]);
        if !self.connector.wait(self.options.command_timeout) {
            self.close_now();
        }
        result.map(|_| ())
    }
}

impl Drop for ImapSession {
    fn drop(&mut self) {
        // A session dropped without logout closes its connection.
        self.connector.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    /// Starts a command the way the session does: through the handle.
    fn start(h: &mut Harness<ImapClient>, tag: String, name: String, parts: Vec<Vec<u8>>) {
        let handle = h.transport().handle();
        handle
            .call(move |p: &mut ImapClient, t| p.start(tag, name, parts, t))
            .unwrap();
        h.run_inbox();
    }

    fn client() -> (Harness<ImapClient>, Receiver<Outcome>) {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let mut h = Harness::new(ImapClient::new(tx, &ImapOptions::default()));
        h.transport().handle(); // the harness takes the inbox at connect
        h.connect();
        (h, rx)
    }

    #[test]
    fn quoting_and_literals() {
        assert_eq!(quoted(b"a \"b\" \\c").unwrap(), b"\"a \\\"b\\\" \\\\c\"");
        assert!(quoted("pässword".as_bytes()).is_none());
        assert!(quoted(b"line\r\nbreak").is_none());
        let args = [
            Arg::Str(b"user".to_vec()),
            Arg::Str("pä".as_bytes().to_vec()),
        ];
        assert_eq!(
            command_parts("A1", "LOGIN", &args, false),
            vec![
                b"A1 LOGIN \"user\" {3}\r\n".to_vec(),
                "pä\r\n".as_bytes().to_vec()
            ]
        );
        assert_eq!(
            command_parts("A1", "LOGIN", &args, true),
            vec!["A1 LOGIN \"user\" {3+}\r\npä\r\n".as_bytes().to_vec()]
        );
    }

    #[test]
    fn greeting_command_literal_continuation_and_no() {
        let (mut h, rx) = client();
        h.feed(b"* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let greeting = rx.try_recv().unwrap().unwrap();
        assert_eq!(
            capabilities_of(&greeting.status).unwrap(),
            vec!["IMAP4rev1".to_string()]
        );
        let parts = command_parts(
            "A1",
            "LOGIN",
            &[Arg::Str(b"u".to_vec()), Arg::Str("pä".as_bytes().to_vec())],
            false,
        );
        start(&mut h, "A1".into(), "LOGIN".into(), parts);
        assert_eq!(h.take_text(), "A1 LOGIN \"u\" {3}\r\n");
        h.feed(b"+ OK\r\n");
        assert_eq!(h.take_text(), "pä\r\n");
        h.feed(b"A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
        assert_eq!(
            rx.try_recv().unwrap(),
            Err(ImapError::No {
                command: "LOGIN".into(),
                text: "[AUTHENTICATIONFAILED] Authentication failed.".into()
            })
        );
        assert!(!h.is_closing(), "a NO leaves the session usable");
    }

    #[test]
    fn bye_greeting_garbage_and_closing_mid_response() {
        let (mut h, rx) = client();
        h.feed(b"* BYE too many connections\r\n");
        assert_eq!(
            rx.try_recv().unwrap(),
            Err(ImapError::Bye("too many connections".into()))
        );

        let (mut h, rx) = client();
        h.feed(b"HTTP/1.1 200 OK\r\n");
        assert!(matches!(rx.try_recv().unwrap(), Err(ImapError::Parse(_))));
        assert!(h.is_closing());

        let (mut h, rx) = client();
        h.feed(b"* OK hi\r\n");
        rx.try_recv().unwrap().unwrap();
        start(
            &mut h,
            "A1".into(),
            "FETCH".into(),
            vec![b"A1 FETCH 1 ENVELOPE\r\n".to_vec()],
        );
        h.feed(b"* 1 FETCH (ENVELOPE (\"date\" {40}\r\nonly part");
        h.disconnect(Reason::Done);
        let e = rx.try_recv().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "the connection closed mid-response to FETCH");
        assert!(rx.try_recv().is_err(), "one outcome only");
    }

    #[test]
    fn responses_in_every_chunking_reach_the_command() {
        let input: &[u8] = b"* OK hi\r\n* 2 EXISTS\r\n* 1 FETCH (ENVELOPE (NIL {5}\r\nHello NIL NIL NIL NIL NIL NIL NIL NIL))\r\nA1 OK done\r\n";
        for size in 1..=input.len() {
            let (mut h, rx) = client();
            h.feed(&input[..9]);
            rx.try_recv().unwrap().unwrap();
            start(
                &mut h,
                "A1".into(),
                "FETCH".into(),
                vec![b"A1 FETCH 1 ENVELOPE\r\n".to_vec()],
            );
            h.feed_chunked(&input[9..], size);
            let reply = rx.try_recv().unwrap().unwrap();
            assert_eq!(reply.untagged.len(), 2, "chunk size {size}");
            let Response::Fetch { items, .. } = &reply.untagged[1] else {
                panic!()
            };
            let env = Envelope::from_value(&items[0].1).unwrap();
            assert_eq!(env.subject.as_deref(), Some("Hello"));
        }
    }
}
