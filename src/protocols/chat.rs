//! The tutorial's pub/sub chat, done right on threads: every line a client
//! sends goes to every client, prefixed with who said it.
//!
//! ```text
//! $ telnet localhost 1025
//! * welcome, 127.0.0.1:51234: 2 here (you included); /help lists the commands
//! hello
//! <127.0.0.1:51234> hello
//! /nick alice
//! * 127.0.0.1:51234 is now known as alice
//! <127.0.0.1:51236> hi alice
//! /quit
//! * bye
//! ```
//!
//! The tutorial prefixed every line with `transport.getHost()`, which is
//! the *server's* address, so every line from everyone looked the same;
//! here the prefix names the sender: its `ip:port`, or its nick.
//!
//! The room's state (who is here, nicks, the fan-out and the slow-consumer
//! policy) lives in [`chat_room`]; this file is the part
//! one person at a terminal talks to: the greeting, the commands, and the
//! error messages.

use std::collections::VecDeque;
use std::sync::Arc;

use super::chat_room::{self, MemberId, NickError, Room};
use crate::framing::line::{
    DEFAULT_MAX_LINE_LENGTH, LineConfig, LineHandler, LineReceiver, LineTransport, call_handler,
};
use crate::protocol::{Addr, Factory, Protocol, Reason, Refusal};
use crate::transport::{ConnHandle, HandleError, Transport};

/// Where `spindle serve chat` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:1025";

/// What `/help` prints, one line each.
pub const HELP: &[&str] = &[
    "* commands:",
    "*   /nick NAME   be called NAME (letters of one script, digits, _ and -; starts with a letter)",
    "*   /who         who is here",
    "*   /me ACTION   say `* NAME ACTION`",
    "*   /help        this text",
    "*   /quit        leave",
    "* any other line is said to everyone; start it with // to say a line beginning with /",
];

/// How many lines a client may send ahead of its own echo, as a multiple
/// of its outbound queue (`--outbound-queue`), before it counts as a slow
/// consumer. See [`Chat`].
pub const BACKLOG_FACTOR: usize = 16;

/// One person in the chat room. See the [module docs](self).
///
/// # A sender is a reader too
///
/// Everything a client says comes back to it through its own inbox, in the
/// room's order. One read from its socket may hold thousands of lines (a
/// paste, a benchmark), more than its inbox holds, and the owner cannot
/// drain the inbox while it is busy with that very read. So when the inbox
/// is nearly full, the chat holds the client's remaining lines back, in
/// order, and queues a *resume* behind the lines already waiting: when the
/// owner reaches it, those lines have gone out, and the held-back ones are
/// said. A client that gets more than [`BACKLOG_FACTOR`] × its outbound
/// queue lines ahead of its own echo is sending faster than it reads, and
/// is dropped as a slow consumer.
///
/// Replies for the sender alone (`/who`, `/help`, errors) are written at
/// once, so they may overtake broadcast lines still queued for it; the
/// one order holds for everything said to the room.
#[derive(Debug)]
pub struct Chat {
    room: Arc<Room>,
    me: Option<MemberId>,
    own: Option<ConnHandle>,
    backlog: VecDeque<Vec<u8>>,
    resume_queued: bool,
}

/// Writes one line with the CRLF every output line ends with.
fn send_line(transport: &mut Transport, line: &str) {
    transport.write_sequence(&[line.as_bytes(), b"\r\n"]);
}

impl Chat {
    /// A member-to-be of `room`; it joins on `connection_made`.
    pub fn new(room: Arc<Room>) -> Self {
        Chat {
            room,
            me: None,
            own: None,
            backlog: VecDeque::new(),
            resume_queued: false,
        }
    }

    /// Joins the room and greets. Lines broadcast from now on reach this
    /// connection through its inbox, after the greeting.
    fn join(&mut self, transport: &mut Transport) {
        let own = transport.handle();
        let joined = self.room.join(own.clone());
        self.me = Some(joined.id);
        self.own = Some(own);
        send_line(
            transport,
            &format!(
                "* welcome, {}: {} here (you included); /help lists the commands",
                joined.name, joined.here
            ),
        );
    }

    /// One line from the client, without its line end: now, or after the
    /// lines held back before it.
    fn take_line(&mut self, line: &[u8], transport: &mut Transport) {
        if self.me.is_none() {
            return;
        }
        if self.backlog.is_empty() && self.room_for_echo() {
            self.handle_line(line, transport);
        } else {
            self.hold(line.to_vec(), transport);
        }
    }

    /// Whether our inbox can take one more line and still keep a slot for
    /// a resume and one for the room's farewell.
    fn room_for_echo(&self) -> bool {
        self.own
            .as_ref()
            .is_none_or(|h| h.queued() + 2 < h.capacity())
    }

    /// Keeps `line` until the inbox has drained, and makes sure a resume
    /// is queued behind what is waiting there.
    fn hold(&mut self, line: Vec<u8>, transport: &mut Transport) {
        self.backlog.push_back(line);
        let Some(own) = self.own.clone() else { return };
        if self.backlog.len() > BACKLOG_FACTOR * own.capacity() {
            log::info!("{} lines sent ahead of their echo", self.backlog.len());
            self.drop_self(transport);
            return;
        }
        self.queue_resume(transport);
    }

    /// Queues a resume behind what waits in our inbox, unless one is
    /// already there. No room even for that: we are a slow consumer.
    fn queue_resume(&mut self, transport: &mut Transport) {
        let Some(own) = &self.own else { return };
        if self.resume_queued {
            return;
        }
        match call_handler(own, |chat: &mut Chat, lines| chat.resume(lines.transport())) {
            Ok(()) => self.resume_queued = true,
            Err(_) => self.drop_self(transport),
        }
    }

    /// Our inbox drained up to the resume: say the held-back lines, as
    /// many as it has room for (at least one, so that this always moves).
    fn resume(&mut self, transport: &mut Transport) {
        self.resume_queued = false;
        let mut first = true;
        while let Some(line) = self.backlog.pop_front() {
            if transport.is_disconnecting() || self.me.is_none() {
                self.backlog.clear();
                return;
            }
            if !first && !self.room_for_echo() {
                self.backlog.push_front(line);
                self.queue_resume(transport);
                return;
            }
            first = false;
            self.handle_line(&line, transport);
        }
    }

    /// One line, now.
    fn handle_line(&mut self, line: &[u8], transport: &mut Transport) {
        let Some(me) = self.me else { return };
        if line.iter().all(|b| *b == b' ' || *b == b'\t') {
            return;
        }
        let said = match line.strip_prefix(b"/") {
            Some(rest) if rest.starts_with(b"/") => self.room.say(me, rest),
            Some(rest) => {
                self.command(me, rest, transport);
                return;
            }
            None => self.room.say(me, line),
        };
        if said.is_err() {
            self.dropped(transport);
        }
    }

    /// A `/command`, `rest` being what follows the slash.
    fn command(&mut self, me: MemberId, rest: &[u8], transport: &mut Transport) {
        let text = String::from_utf8_lossy(rest);
        let (word, args) = match text.split_once(' ') {
            Some((word, args)) => (word, args.trim()),
            None => (text.as_ref(), ""),
        };
        match word.to_ascii_lowercase().as_str() {
            "nick" => match self.room.rename(me, args) {
                Ok(_) => {}
                Err(NickError::Gone) => self.dropped(transport),
                Err(e) => send_line(transport, &format!("! {e}")),
            },
            "who" => {
                let names = self.room.who();
                send_line(
                    transport,
                    &format!("* {} here: {}", names.len(), names.join(", ")),
                );
            }
            "me" if args.is_empty() => send_line(transport, "! usage: /me ACTION"),
            "me" => {
                if self.room.emote(me, args.as_bytes()).is_err() {
                    self.dropped(transport);
                }
            }
            "help" => {
                for line in HELP {
                    send_line(transport, line);
                }
            }
            "quit" => {
                self.leave();
                send_line(transport, "* bye");
                transport.lose_connection();
            }
            _ => send_line(
                transport,
                &format!(
                    "! unknown command /{}; /help lists the commands",
                    chat_room::printable(word.as_bytes())
                ),
            ),
        }
    }

    /// We found ourselves too far behind: out of the room, told why, closed.
    fn drop_self(&mut self, transport: &mut Transport) {
        self.backlog.clear();
        if let Some(me) = self.me.take()
            && let Ok(why) = self.room.drop_slow(me)
        {
            transport.write(why.as_bytes());
        }
        transport.lose_connection();
    }

    /// The room dropped us as a slow consumer while we were talking: say
    /// so now (our farewell is stuck behind the lines we did not read) and
    /// close.
    fn dropped(&mut self, transport: &mut Transport) {
        self.me = None;
        send_line(
            transport,
            "* you are being disconnected: too many lines were waiting for you to read them",
        );
        transport.lose_connection();
    }

    /// A line longer than the limit: it reaches no one, the client is told
    /// why, and the connection is dropped (as Twisted drops it).
    fn refuse_long_line(&mut self, max: usize, transport: &mut Transport) {
        log::warn!("line longer than {max} bytes; dropping the connection");
        self.leave();
        send_line(
            transport,
            &format!("! line too long (the limit is {max} bytes); disconnecting"),
        );
        transport.lose_connection();
    }

    /// Leaves the room, once.
    fn leave(&mut self) {
        if let Some(me) = self.me.take() {
            self.room.leave(me);
        }
    }
}

impl LineHandler for Chat {
    fn connection_made(&mut self, lines: &mut LineTransport<'_>) {
        self.join(lines.transport());
    }

    fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
        self.take_line(line, lines.transport());
    }

    fn line_length_exceeded(&mut self, _data: &[u8], lines: &mut LineTransport<'_>) {
        let max = lines.max_length();
        self.refuse_long_line(max, lines.transport());
    }

    /// Ctrl-C in telnet: as `/quit`.
    fn telnet_interrupt(&mut self, lines: &mut LineTransport<'_>) {
        self.leave();
        lines.send_line(b"* bye");
        lines.lose_connection();
    }

    /// The connection is gone: leave the room if still in it.
    fn connection_lost(&mut self, _reason: &Reason) {
        self.leave();
    }
}

/// The slow consumer's farewell: a closure on its owner that writes the
/// reason and closes, so it goes out after every line the client was owed.
fn farewell(handle: &ConnHandle, line: Vec<u8>) -> Result<(), HandleError> {
    call_handler(handle, move |_: &mut Chat, lines| {
        lines.write(&line);
        lines.lose_connection();
    })
}

/// What the factory builds: the chat behind the lenient line receiver
/// (`\r\n`, `\n` or `\r\0` end a line; telnet commands are removed).
pub type ChatProtocol = LineReceiver<Chat>;

/// The chat's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// The longest nick, in characters (`--max-nick`).
    pub max_nick_len: usize,
    /// The longest line, in bytes (`--max-line-length`).
    pub max_line_length: usize,
    /// How long a member dropped as a slow consumer has to read what it
    /// was owed before it is aborted (`--drop-grace`).
    pub drop_grace: std::time::Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_nick_len: chat_room::DEFAULT_MAX_NICK_LEN,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            drop_grace: chat_room::DEFAULT_DROP_GRACE,
        }
    }
}

/// Holds the room (`ChatFactory` in logs).
#[derive(Debug)]
pub struct ChatFactory {
    room: Arc<Room>,
    lines: LineConfig,
}

impl ChatFactory {
    /// A chat service with these limits.
    pub fn new(config: &ChatConfig) -> Self {
        ChatFactory {
            room: Arc::new(
                Room::new(config.max_nick_len, farewell).with_drop_grace(config.drop_grace),
            ),
            lines: LineConfig::lenient().with_max_length(config.max_line_length),
        }
    }

    /// The room, shared by every connection.
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }
}

impl Default for ChatFactory {
    fn default() -> Self {
        ChatFactory::new(&ChatConfig::default())
    }
}

impl Factory for ChatFactory {
    fn name(&self) -> &str {
        "ChatFactory"
    }

    fn build_protocol(&self, _peer: &Addr) -> Result<Box<dyn Protocol>, Refusal> {
        Ok(Box::new(LineReceiver::with_config(
            Chat::new(self.room.clone()),
            self.lines.clone(),
        )))
    }

    fn busy_message(&self) -> Option<&[u8]> {
        Some(b"* the chat is full; try again later\r\n")
    }

    /// The room is shared by every connection: it is the whole point.
    fn shares_state(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, assert_same_for_every_chunking};
    use crate::transport::Closing;

    fn chat(room: &Arc<Room>) -> ChatProtocol {
        LineReceiver::with_config(Chat::new(room.clone()), LineConfig::lenient())
    }

    fn room() -> Arc<Room> {
        ChatFactory::default().room().clone()
    }

    /// Harness peers are all 127.0.0.1:40000.
    const ME: &str = "127.0.0.1:40000";

    #[test]
    fn one_client_session_is_the_same_in_every_chunking() {
        let input: &[u8] = b"hello\r\n\n   \r\n/nick bob\nhi\r\0/me waves\r\n/who\r\n\
            //slash\r\n/nick 9\r\n/bogus\r\n";
        let out = assert_same_for_every_chunking(|| chat(&room()), input);
        let text = String::from_utf8(out.output).unwrap();
        // Direct replies come as each line is handled; what the room
        // broadcast arrives through the inbox, which the harness runs last.
        assert_eq!(
            text,
            format!(
                "* welcome, {ME}: 1 here (you included); /help lists the commands\r\n\
                 * 1 here: bob\r\n\
                 ! a nick starts with a letter\r\n\
                 ! unknown command /bogus; /help lists the commands\r\n\
                 <{ME}> hello\r\n\
                 * {ME} is now known as bob\r\n\
                 <bob> hi\r\n\
                 * bob waves\r\n\
                 <bob> /slash\r\n"
            )
        );
        assert_eq!(out.closing, Closing::No);
        // After /quit nothing more is handled, and what the room had still
        // queued for us is never delivered: the harness, like the engines,
        // runs no inbox command after a close.
        let out =
            assert_same_for_every_chunking(|| chat(&room()), b"hello\r\n/quit\r\nnever said\r\n");
        assert_eq!(
            String::from_utf8(out.output).unwrap(),
            format!(
                "* welcome, {ME}: 1 here (you included); /help lists the commands\r\n\
                 * bye\r\n"
            )
        );
        assert_eq!(out.closing, Closing::Lose);
    }

    #[test]
    fn telnet_timing_mark_is_refused_in_its_place_in_every_chunking() {
        // Ctrl-\ in telnet: IAC BRK IAC DO TIMING-MARK, which must be
        // answered or the client discards our output for good.
        let input: &[u8] = b"/who\r\n\xff\xf3\xff\xfd\x06/who\r\n\xff\xfb\x1f/quit\r\n";
        let out = assert_same_for_every_chunking(|| chat(&room()), input);
        let expected = [
            format!("* welcome, {ME}: 1 here (you included); /help lists the commands\r\n")
                .as_bytes(),
            format!("* 1 here: {ME}\r\n").as_bytes(),
            b"\xff\xfd\x00", // DO BINARY, at the first command
            b"\xff\xfc\x06", // WONT TIMING-MARK
            format!("* 1 here: {ME}\r\n").as_bytes(),
            b"\xff\xfe\x1f", // DONT NAWS
            b"* bye\r\n",
        ]
        .concat();
        assert_eq!(
            out.output,
            expected,
            "{:?}",
            String::from_utf8_lossy(&out.output)
        );
        assert_eq!(out.closing, Closing::Lose);
    }

    #[test]
    fn broadcasts_reach_both_in_one_order() {
        let room = room();
        let mut a = Harness::new(chat(&room));
        let mut b = Harness::new(chat(&room));
        a.connect();
        b.connect();
        a.take_output();
        assert!(b.take_text().contains("2 here"));
        a.feed(b"/nick ann\r\nfrom a\r\n");
        b.feed(b"from b\r\n/me nods\r\n");
        a.run_inbox();
        b.run_inbox();
        let expected = format!(
            "* {ME} joined (2 here)\r\n\
             * {ME} is now known as ann\r\n\
             <ann> from a\r\n\
             <{ME}> from b\r\n\
             * {ME} nods\r\n"
        );
        assert_eq!(a.take_text(), expected);
        // b joined after its own notice went out.
        assert_eq!(b.take_text(), expected.split_once("\r\n").unwrap().1);
        b.feed(b"/quit\r\n");
        b.disconnect(Reason::Done);
        a.run_inbox();
        assert_eq!(a.take_text(), format!("* {ME} left (1 here)\r\n"));
    }

    #[test]
    fn a_burst_bigger_than_the_inbox_is_held_back_not_dropped() {
        let room = room();
        let mut sender = Harness::with_inbox_capacity(chat(&room), 8);
        let mut other = Harness::new(chat(&room));
        sender.connect();
        other.connect();
        sender.take_output();
        other.take_output();
        let burst: Vec<u8> = (0..50)
            .flat_map(|k| format!("line {k}\n").into_bytes())
            .collect();
        sender.feed(&burst);
        // Only what fits went out at once; the rest waits for the resume.
        other.run_inbox();
        let first = other.take_text();
        assert!(first.lines().count() < 8, "{first}");
        sender.run_inbox();
        other.run_inbox();
        let all = first + &other.take_text();
        let expected: String = (0..50).map(|k| format!("<{ME}> line {k}\r\n")).collect();
        assert_eq!(all, expected);
        assert!(sender.take_text().ends_with(&format!("<{ME}> line 49\r\n")));
        assert_eq!(room.len(), 2);
        assert!(!sender.is_closing());
    }

    #[test]
    fn a_sender_far_ahead_of_its_own_echo_is_dropped() {
        let room = room();
        let mut sender = Harness::with_inbox_capacity(chat(&room), 4);
        let mut other = Harness::new(chat(&room));
        sender.connect();
        other.connect();
        sender.take_output();
        let flood: Vec<u8> = (0..BACKLOG_FACTOR * 4 + 10)
            .flat_map(|k| format!("{k}\n").into_bytes())
            .collect();
        sender.feed(&flood);
        assert_eq!(sender.closing(), Closing::Lose);
        assert!(
            sender
                .take_text()
                .starts_with("* you are being disconnected: ")
        );
        other.run_inbox();
        assert!(other.take_text().ends_with(&format!(
            "* {ME} was dropped: too slow to keep up (1 here)\r\n"
        )));
        assert_eq!(room.len(), 1);
    }

    #[test]
    fn a_too_long_line_reaches_no_one() {
        let room = room();
        let mut a = Harness::new(LineReceiver::with_config(
            Chat::new(room.clone()),
            LineConfig::lenient().with_max_length(10),
        ));
        let mut b = Harness::new(chat(&room));
        a.connect();
        b.connect();
        a.take_output();
        b.take_output();
        a.feed(b"0123456789ABC\r\n");
        assert_eq!(
            a.take_text(),
            "! line too long (the limit is 10 bytes); disconnecting\r\n"
        );
        assert_eq!(a.closing(), Closing::Lose);
        b.run_inbox();
        assert_eq!(b.take_text(), format!("* {ME} left (1 here)\r\n"));
    }

    #[test]
    fn telnet_ctrl_c_leaves_politely() {
        let room = room();
        let mut a = Harness::new(chat(&room));
        a.connect();
        a.take_output();
        a.feed(b"\xff\xf4");
        assert_eq!(a.take_output(), b"\xff\xfd\x00* bye\r\n");
        assert_eq!(a.closing(), Closing::Lose);
        assert!(room.is_empty());
    }
}
