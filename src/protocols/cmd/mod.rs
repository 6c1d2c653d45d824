//! The tutorial's command server: a line protocol whose commands run work
//! off the connection's owner — a child process (`lastlog`) and a file hash
//! on the blocking pool (`comhash`) — while the connection stays
//! responsive.
//!
//! ```text
//! $ telnet localhost 9999
//! help
//! lastlog: show the last 10 lines of the server's log file
//! comhash PATH: show the SHA-1 of a regular file under the server's root
//! help: show this list
//! exit: close the connection
//! comhash Cargo.toml
//! File hash is : 5b3c6e...
//! exit
//! Connection closed by foreign host.
//! ```
//!
//! * `lastlog` → `Begin lastlog`, the last 10 lines of `--log-file` (lines
//!   starting with `==` dropped), `End lastlog` — once, however the child's
//!   output is chunked ([`lastlog`]); a failure gives
//!   `An error occured: <reason>`.
//! * `comhash PATH` → `File hash is : <40 hex>`, streamed on the pool;
//!   only regular files inside `--root` ([`comhash`]); `comhash` alone →
//!   `please provide a path.`; a full pool → `An error occured: server busy`.
//! * `exit` closes once the answers already due (`lastlog`s and `comhash`es
//!   still running for this client) have been written, each bounded by its
//!   own limit (`--lastlog-timeout`; a hash ends with its file), and at most
//!   `--exit-wait` after the `exit`; lines after `exit` are not run. So
//!   `printf 'lastlog\ncomhash README.md\nexit\n' | nc HOST 9999` prints
//!   every answer. *Unlike Twisted*, whose `exit` closes at once and drops
//!   the answers not yet written. `help` lists the commands; anything else
//!   → `Command not found.`
//! * At most `--max-clients` connections at once; the next one is told
//!   `Too many connections, bye!` and closed (the tutorial closed it
//!   silently).
//!
//! Lines end at `\n` (a telnet's `\r\n` too: the lenient line receiver);
//! answers end with `\n`, as the tutorial's. Answers to `comhash` come when
//! the hash is done, possibly after the answers to later commands (as in
//! Twisted).

pub mod comhash;
pub mod lastlog;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::blocking::BlockingPool;
use crate::deferred::defer_to_thread;
use crate::framing::line::{
    DEFAULT_MAX_LINE_LENGTH, LineConfig, LineHandler, LineReceiver, LineTransport,
};
use crate::protocol::{Addr, Factory, Protocol, Reason, Refusal};
use crate::spawn::{ProcessEnd, ProcessProtocol, spawn_process};
use crate::transport::Transport;
use lastlog::LastLogOutput;

/// Where `spindle serve cmd` listens unless told otherwise: loopback only,
/// since anyone who reaches it can read the log (`lastlog`) and hash files
/// under the server's directory (`comhash`). `--interface` or `--listen`
/// opens it wider, on purpose.
pub const DEFAULT_ENDPOINT: &str = "tcp:9999:interface=127.0.0.1";
/// Connections served at once unless `--max-clients` says otherwise (the
/// tutorial's `clients_max`).
pub const DEFAULT_MAX_CLIENTS: usize = 10;
/// The file `lastlog` shows unless `--log-file` says otherwise (the
/// tutorial's).
pub const DEFAULT_LOG_FILE: &str = "/var/log/messages";
/// How long `tail` may run before it is killed, unless `--lastlog-timeout`
/// says otherwise.
pub const LASTLOG_TIME_LIMIT: Duration = Duration::from_secs(10);
/// How long `exit` waits for the answers already due, unless `--exit-wait`
/// says otherwise: longer than `--lastlog-timeout`'s default, so a `tail`
/// killed at its limit still gets its error answer out.
pub const EXIT_WAIT: Duration = Duration::from_secs(30);
/// What a client beyond `--max-clients` is told before the close.
pub const TOO_MANY: &str = "Too many connections, bye!";

/// The commands and what they do, as `help` lists them.
const HELP: &str = "lastlog: show the last 10 lines of the server's log file\n\
                    comhash PATH: show the SHA-1 of a regular file under the server's root\n\
                    help: show this list\n\
                    exit: close the connection\n";

/// The protocol type the factory boxes: deferred results and child output
/// name it in `call`s.
pub type CmdReceiver = LineReceiver<CmdProtocol>;

/// How a command server is set up.
#[derive(Debug, Clone)]
pub struct CmdConfig {
    /// The file `lastlog` tails.
    pub log_file: PathBuf,
    /// The directory `comhash` is confined to.
    pub root: PathBuf,
    /// Connections served at once.
    pub max_clients: usize,
    /// How long `tail` may run before it is killed.
    pub lastlog_time_limit: Duration,
    /// The longest command line accepted, in bytes; a longer one is
    /// logged and the connection dropped (the line receiver's default).
    pub max_line_length: usize,
    /// Hash on the connection's owner instead of the blocking pool: the
    /// mistake `defer_to_thread` exists to avoid, kept as an option to
    /// measure it (NOTES.md, "Blocking work"). Under the reactor, a hash
    /// done inline stalls every connection until it is done.
    pub comhash_inline: bool,
    /// The longest `exit` waits for answers still due before it closes
    /// anyway (logged).
    pub exit_wait: Duration,
}

impl Default for CmdConfig {
    fn default() -> Self {
        CmdConfig {
            log_file: PathBuf::from(DEFAULT_LOG_FILE),
            root: PathBuf::from("."),
            max_clients: DEFAULT_MAX_CLIENTS,
            lastlog_time_limit: LASTLOG_TIME_LIMIT,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            comhash_inline: false,
            exit_wait: EXIT_WAIT,
        }
    }
}

/// What every connection of one command server shares.
#[derive(Debug)]
struct Shared {
    log_file: PathBuf,
    /// Canonical: every symlink resolved.
    root: PathBuf,
    max_clients: usize,
    lastlog_time_limit: Duration,
    max_line_length: usize,
    comhash_inline: bool,
    exit_wait: Duration,
    clients: AtomicUsize,
    pool: Arc<BlockingPool>,
}

/// A counted client: the count falls when the protocol is dropped, however
/// the connection ended.
#[derive(Debug)]
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One client of the command server (`CmdProtocol` in logs, as in the
/// tutorial).
#[derive(Debug)]
pub struct CmdProtocol {
    slot: ClientSlot,
    client_ip: String,
    /// Dropped with the connection: work for this client watches it (as a
    /// `Weak`) and stops early once it is gone.
    here: Arc<()>,
    /// Answers still to come: `lastlog` children running, `comhash` jobs
    /// not yet answered.
    due: usize,
    /// `exit` was received: no more commands; close once `due` is 0.
    exiting: bool,
}

impl CmdProtocol {
    fn shared(&self) -> &Arc<Shared> {
        &self.slot.0
    }

    fn lastlog(&mut self, lines: &mut LineTransport<'_>) {
        let shared = self.shared().clone();
        let argv = lastlog::tail_argv(&shared.log_file);
        let pp = LastLog::default();
        self.due += 1;
        if let Err(e) = spawn_process(
            &shared.pool,
            lines.transport(),
            &argv,
            shared.lastlog_time_limit,
            pp,
        ) {
            log::warn!("lastlog: {e}");
            lines.write(format!("An error occured: {e}\n").as_bytes());
            self.due = self.due.saturating_sub(1);
        }
    }

    /// One answer that was due has been written: the last one lets a
    /// pending `exit` close.
    fn answered(&mut self, transport: &mut Transport) {
        self.due = self.due.saturating_sub(1);
        if self.exiting && self.due == 0 {
            transport.lose_connection();
        }
    }

    /// `exit`: close now, or once the answers already due are written,
    /// within `--exit-wait`.
    fn exit(&mut self, lines: &mut LineTransport<'_>) {
        if self.due == 0 {
            lines.lose_connection();
            return;
        }
        self.exiting = true;
        log::info!(
            "exit from {}: closing after the {} answer(s) still due",
            self.client_ip,
            self.due
        );
        let wait = self.shared().exit_wait;
        lines.call_handler_later(wait, move |me: &mut CmdProtocol, lines| {
            if me.due == 0 || lines.is_disconnecting() {
                return;
            }
            log::warn!(
                "exit from {}: {} answer(s) still due after --exit-wait {wait:?}; closing without them",
                me.client_ip,
                me.due
            );
            lines.lose_connection();
        });
    }

    fn comhash(&mut self, path: &str, lines: &mut LineTransport<'_>) {
        let shared = self.shared().clone();
        if shared.comhash_inline {
            // Blocks this connection's owner (and, on the reactor, the
            // loop) for the whole file: on purpose, see CmdConfig.
            match comhash::hash_in_root_while(&shared.root, path, &|| true) {
                Ok(hex) => lines.write(format!("File hash is : {hex}\n").as_bytes()),
                Err(failure) => {
                    log::info!("comhash failed: {failure}");
                    lines.write(format!("An error occured: {failure}\n").as_bytes());
                }
            }
            return;
        }
        let root = shared.root.clone();
        let path = path.to_string();
        let here = Arc::downgrade(&self.here);
        self.due += 1;
        defer_to_thread::<CmdReceiver, String, _>(&shared.pool, lines.transport(), move || {
            // Stop hashing once this client is gone: nobody would read it.
            comhash::hash_in_root_while(&root, &path, &|| here.strong_count() > 0)
        })
        .add_callbacks(
            |me, t, hex| {
                t.write(format!("File hash is : {hex}\n").as_bytes());
                me.handler.answered(t);
                Ok(())
            },
            |me, t, failure| {
                log::info!("comhash failed: {failure}");
                t.write(format!("An error occured: {failure}\n").as_bytes());
                me.handler.answered(t);
                Ok(())
            },
        );
    }
}

/// Peer text fit for one log line: control characters escaped.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

impl LineHandler for CmdProtocol {
    fn connection_made(&mut self, _lines: &mut LineTransport<'_>) {
        log::info!("Client connection from {}", self.client_ip);
    }

    fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if self.exiting {
            log::info!(
                "Cmd received from {} after exit, not run: {}",
                self.client_ip,
                printable(text)
            );
            return;
        }
        log::info!("Cmd received from {} : {}", self.client_ip, printable(text));
        let (command, rest) = match text.split_once(char::is_whitespace) {
            Some((command, rest)) => (command, rest.trim()),
            None => (text, ""),
        };
        match command {
            "lastlog" => self.lastlog(lines),
            "comhash" if rest.is_empty() => lines.write(b"please provide a path.\n"),
            "comhash" => self.comhash(rest, lines),
            "help" => lines.write(HELP.as_bytes()),
            "exit" => self.exit(lines),
            _ => lines.write(b"Command not found.\n"),
        }
    }

    fn connection_lost(&mut self, reason: &Reason) {
        log::info!("Lost client connection. Reason: {reason}");
    }
}

/// Collects `tail`'s output and answers once it ended.
#[derive(Debug, Default)]
struct LastLog {
    output: LastLogOutput,
}

impl ProcessProtocol<CmdReceiver> for LastLog {
    fn out_received(&mut self, data: &[u8], _: &mut CmdReceiver, _: &mut Transport) {
        self.output.push_out(data);
    }

    fn err_received(&mut self, data: &[u8], _: &mut CmdReceiver, _: &mut Transport) {
        self.output.push_err(data);
    }

    fn process_ended(&mut self, end: &ProcessEnd, me: &mut CmdReceiver, transport: &mut Transport) {
        if !end.is_success() {
            log::info!("lastlog: tail {end}");
        }
        transport.write(self.output.answer(end).as_bytes());
        me.handler.answered(transport);
    }
}

/// Builds command-server connections and counts them (`CmdFactory` in
/// logs).
#[derive(Debug)]
pub struct CmdFactory {
    shared: Arc<Shared>,
}

impl CmdFactory {
    /// A factory for `config`, running its blocking work on `pool`. Fails
    /// if the root is not a directory.
    pub fn new(config: CmdConfig, pool: Arc<BlockingPool>) -> io::Result<Self> {
        let root = comhash::canonical_root(&config.root).map_err(|e| {
            io::Error::new(e.kind(), format!("--root {}: {e}", config.root.display()))
        })?;
        Ok(CmdFactory {
            shared: Arc::new(Shared {
                log_file: config.log_file,
                root,
                max_clients: config.max_clients,
                lastlog_time_limit: config.lastlog_time_limit,
                max_line_length: config.max_line_length,
                comhash_inline: config.comhash_inline,
                exit_wait: config.exit_wait,
                clients: AtomicUsize::new(0),
                pool,
            }),
        })
    }

    /// The directory `comhash` is confined to (canonical).
    pub fn root(&self) -> &std::path::Path {
        &self.shared.root
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.shared.clients.load(Ordering::SeqCst)
    }
}

impl Factory for CmdFactory {
    fn name(&self) -> &str {
        "CmdFactory"
    }

    fn build_protocol(&self, peer: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        let before = self.shared.clients.fetch_add(1, Ordering::SeqCst);
        let slot = ClientSlot(self.shared.clone());
        if before >= self.shared.max_clients {
            drop(slot);
            return Err(Refusal {
                reason: format!(
                    "{TOO_MANY} ({before} clients, --max-clients {})",
                    self.shared.max_clients
                ),
                message: Some(format!("{TOO_MANY}\n").into_bytes()),
            });
        }
        let handler = CmdProtocol {
            slot,
            client_ip: peer.host_string(),
            here: Arc::new(()),
            due: 0,
            exiting: false,
        };
        let lines = LineConfig::lenient().with_max_length(self.shared.max_line_length);
        Ok(Box::new(LineReceiver::with_config(handler, lines)))
    }

    fn busy_message(&self) -> Option<&[u8]> {
        Some(b"Server busy, try again later.\n")
    }

    /// The client count behind `--max-clients` is shared by every
    /// connection.
    fn shares_state(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, assert_same_for_every_chunking, test_peer};
    use std::time::Instant;

    const WAIT: Duration = Duration::from_secs(10);

    struct Fixture {
        dir: PathBuf,
        factory: CmdFactory,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(tag: &str, max_clients: usize) -> Fixture {
        fixture_with(tag, max_clients, false)
    }

    fn fixture_with(tag: &str, max_clients: usize, comhash_inline: bool) -> Fixture {
        let dir = std::env::temp_dir().join(format!("spindle-cmd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("abc.txt"), "abc").unwrap();
        let log: String = (1..=12).map(|i| format!("log line {i}\n")).collect();
        std::fs::write(dir.join("server.log"), log).unwrap();
        let config = CmdConfig {
            log_file: dir.join("server.log"),
            root: dir.clone(),
            max_clients,
            comhash_inline,
            ..CmdConfig::default()
        };
        let pool = Arc::new(BlockingPool::new(2, 8).unwrap());
        Fixture {
            factory: CmdFactory::new(config, pool).unwrap(),
            dir,
        }
    }

    fn receiver(f: &Fixture) -> CmdReceiver {
        f.factory.shared.clients.fetch_add(1, Ordering::SeqCst);
        let p = CmdProtocol {
            slot: ClientSlot(f.factory.shared.clone()),
            client_ip: "127.0.0.1".into(),
            here: Arc::new(()),
            due: 0,
            exiting: false,
        };
        LineReceiver::with_config(p, LineConfig::lenient())
    }

    fn client(f: &Fixture) -> Harness<CmdReceiver> {
        let mut h = Harness::new(receiver(f));
        h.connect();
        h
    }

    /// Runs inbox commands until the output ends with `suffix`.
    fn output_until(h: &mut Harness<CmdReceiver>, suffix: &str) -> String {
        let mut out = String::new();
        let deadline = Instant::now() + WAIT;
        while !out.ends_with(suffix) && Instant::now() < deadline {
            h.run_inbox_once(Duration::from_millis(50));
            out.push_str(&h.take_text());
        }
        out
    }

    #[test]
    fn synchronous_commands_in_every_chunking() {
        let f = fixture("sync", 10);
        let input = b"nope\r\ncomhash\nhelp\n  \nlastlogx\nexit\nhelp\n";
        let out = assert_same_for_every_chunking(|| receiver(&f), input);
        let text = String::from_utf8(out.output).unwrap();
        assert_eq!(
            text,
            format!(
                "Command not found.\nplease provide a path.\n{HELP}Command not found.\nCommand not found.\n"
            )
        );
        assert_eq!(out.closing, crate::Closing::Lose);
        assert_eq!(HELP.lines().count(), 4);
    }

    #[test]
    fn telnet_timing_mark_is_refused_in_its_place_and_ctrl_c_closes() {
        let f = fixture("telnet", 10);
        // Ctrl-\ in telnet: IAC BRK IAC DO TIMING-MARK; then Ctrl-C.
        let input = b"help\r\n\xff\xf3\xff\xfd\x06nope\r\n\xff\xf4\xff\xfd\x06help\r\n";
        let out = assert_same_for_every_chunking(|| receiver(&f), input);
        let mut expected = HELP.as_bytes().to_vec();
        // DO BINARY at the first command, WONT TIMING-MARK in its place.
        expected.extend_from_slice(b"\xff\xfd\x00\xff\xfc\x06Command not found.\n");
        assert_eq!(out.output, expected);
        assert_eq!(out.closing, crate::Closing::Lose);
    }

    #[test]
    fn comhash_answers_from_the_pool() {
        let f = fixture("hash", 10);
        let mut h = client(&f);
        h.feed(b"comhash abc.txt\n");
        assert_eq!(
            output_until(&mut h, "\n"),
            "File hash is : a9993e364706816aba3e25717850c26c9cd0d89d\n"
        );
        h.feed(b"comhash ../../etc/passwd\r\n");
        assert_eq!(
            output_until(&mut h, "\n"),
            "An error occured: ../../etc/passwd: outside the server's root directory\n"
        );
    }

    #[test]
    fn comhash_inline_answers_within_the_callback_in_every_chunking() {
        let f = fixture_with("inline", 10, true);
        let input = b"comhash abc.txt\r\ncomhash ../x\nhelp\n";
        // No inbox run: inline means the answer is written by the callback.
        let out = assert_same_for_every_chunking(|| receiver(&f), input);
        assert_eq!(
            String::from_utf8(out.output).unwrap(),
            format!(
                "File hash is : a9993e364706816aba3e25717850c26c9cd0d89d\n\
                 An error occured: ../x: outside the server's root directory\n{HELP}"
            )
        );
    }

    #[test]
    fn lastlog_answers_once_with_the_last_ten_lines() {
        let f = fixture("lastlog", 10);
        let mut h = client(&f);
        h.feed(b"lastlog\n");
        let expected: String = std::iter::once("Begin lastlog\n".to_string())
            .chain((3..=12).map(|i| format!("log line {i}\n")))
            .chain(std::iter::once("End lastlog\n".to_string()))
            .collect();
        assert_eq!(output_until(&mut h, "End lastlog\n"), expected);
        std::fs::remove_file(f.dir.join("server.log")).unwrap();
        h.feed(b"lastlog\n");
        let out = output_until(&mut h, "\n");
        assert!(
            out.starts_with("An error occured: tail exited with status 1: tail: cannot open")
                && out.ends_with("No such file or directory\n"),
            "{out}"
        );
    }

    #[test]
    fn exit_closes_after_the_answers_already_due_and_runs_nothing_after_it() {
        let f = fixture("exit-due", 10);
        let mut h = client(&f);
        h.feed(b"lastlog\ncomhash abc.txt\nexit\nhelp\n");
        // Nothing was answered yet: exit must not have closed.
        assert!(!h.is_closing());
        let mut out = String::new();
        let deadline = Instant::now() + WAIT;
        while !h.is_closing() && Instant::now() < deadline {
            h.run_inbox_once(Duration::from_millis(50));
            out.push_str(&h.take_text());
        }
        out.push_str(&h.take_text());
        assert_eq!(h.closing(), crate::Closing::Lose);
        // Both answers, in whichever order they came, and no help.
        assert!(
            out.contains("File hash is : a9993e364706816aba3e25717850c26c9cd0d89d\n"),
            "{out}"
        );
        assert!(
            out.contains("Begin lastlog\n") && out.ends_with('\n'),
            "{out}"
        );
        assert!(out.contains("log line 12\nEnd lastlog\n"), "{out}");
        assert!(!out.contains("help:"), "{out}");
    }

    #[test]
    fn exit_with_nothing_due_closes_at_once() {
        let f = fixture("exit-now", 10);
        let mut h = client(&f);
        h.feed(b"help\nexit\nhelp\n");
        assert_eq!(h.take_text(), HELP);
        assert_eq!(h.closing(), crate::Closing::Lose);
    }

    #[test]
    fn exit_waits_no_longer_than_exit_wait() {
        let f = fixture("exit-wait", 10);
        let mut h = client(&f);
        // Answers that are due but never come: a counted job whose result
        // is lost (as a delivery that timed out would be).
        h.protocol.handler.due = 2;
        h.feed(b"exit\n");
        assert!(!h.is_closing());
        h.advance(EXIT_WAIT - Duration::from_millis(1));
        assert!(!h.is_closing());
        h.advance(Duration::from_millis(1));
        assert_eq!(h.closing(), crate::Closing::Lose);
    }

    #[test]
    fn the_client_beyond_max_clients_is_refused_with_a_line() {
        let f = fixture("max", 2);
        let a = f.factory.build_protocol(&test_peer()).unwrap();
        let b = f.factory.build_protocol(&test_peer()).unwrap();
        let Err(refusal) = f.factory.build_protocol(&test_peer()) else {
            panic!("a third client is refused")
        };
        assert_eq!(
            refusal.message.as_deref(),
            Some(&b"Too many connections, bye!\n"[..])
        );
        assert!(refusal.reason.starts_with(TOO_MANY));
        assert_eq!(f.factory.clients(), 2);
        drop(a);
        assert_eq!(f.factory.clients(), 1);
        let _c = f.factory.build_protocol(&test_peer()).unwrap();
        drop(b);
    }

    #[test]
    fn control_characters_are_escaped_in_logs() {
        assert_eq!(printable("a\u{1b}[2Jb\tc"), "a\\u{1b}[2Jb\\tc");
    }
}
