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
//! The room's state (who is here, nicks, the fan-out and the flow-control
//! policy) lives in [`chat_room`]; this file is the part
//! one person at a terminal talks to: the greeting, the commands, and the
//! error messages.

use std::sync::Arc;
use std::time::Duration;

use super::chat_room::{self, MemberHooks, MemberId, NickError, Pace, Room};
use crate::framing::line::{
    DEFAULT_MAX_LINE_LENGTH, LineConfig, LineHandler, LineReceiver, LineTransport, call_handler,
};
use crate::protocol::{Addr, Factory, Protocol, Reason, Refusal};
use crate::transport::{ConnHandle, HandleError, TimerId, Transport};

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

/// One person in the chat room. See the [module docs](self).
///
/// # A sender waits for the room
///
/// Everything a client says goes to every member's queue, its own
/// included. When the room answers [`Pace::Wait`] (a member is behind;
/// see [`chat_room`]'s "Flow control"), the chat pauses its connection's
/// input: the line framer keeps the rest of the current read, the engine
/// reads nothing more, and the client's further lines wait in the kernel.
/// The room resumes the connection when the members it waited on have
/// drained. While paused, a timer checks after `--drop-grace` for members
/// that took nothing meanwhile, which the room then drops.
///
/// Replies for the sender alone (`/who`, `/help`, errors) are written at
/// once, so they may overtake broadcast lines still queued for it; the
/// one order holds for everything said to the room.
#[derive(Debug)]
pub struct Chat {
    room: Arc<Room>,
    me: Option<MemberId>,
    /// The check for stalled members, armed while paused.
    stall_check: Option<TimerId>,
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
            stall_check: None,
        }
    }

    /// Joins the room and greets. Lines broadcast from now on reach this
    /// connection through its inbox, after the greeting.
    fn join(&mut self, transport: &mut Transport) {
        let own = transport.handle();
        let joined = self.room.join(own);
        self.me = Some(joined.id);
        send_line(
            transport,
            &format!(
                "* welcome, {}: {} here (you included); /help lists the commands",
                joined.name, joined.here
            ),
        );
    }

    /// One line from the client, without its line end.
    fn take_line(&mut self, line: &[u8], transport: &mut Transport) {
        self.handle_line(line, transport);
    }

    /// The room says a member is behind: stop reading until it resumes
    /// us, and make sure someone looks for stalled members meanwhile.
    fn wait(&mut self, transport: &mut Transport) {
        transport.pause_producing();
        if self.stall_check.is_none() {
            self.arm_stall_check(self.room.drop_grace(), transport);
        }
    }

    fn arm_stall_check(&mut self, after: Duration, transport: &mut Transport) {
        let id = transport.call_later(after, |p: &mut ChatProtocol, t: &mut Transport| {
            p.with_handler(t, |chat, lines| chat.check_stalled(lines.transport()))
        });
        self.stall_check = Some(id);
    }

    /// Our stall check is due: the room drops the members we wait on that
    /// took nothing for the grace (which resumes us if they were the last),
    /// or says when to look again.
    fn check_stalled(&mut self, transport: &mut Transport) {
        self.stall_check = None;
        let Some(me) = self.me else { return };
        if let Some(again) = self.room.check_stalled(me, transport.now()) {
            self.arm_stall_check(again, transport);
        }
    }

    /// What the room said of a broadcast of ours.
    fn paced(&mut self, said: Result<Pace, chat_room::Gone>, transport: &mut Transport) {
        match said {
            Ok(Pace::Go) => {}
            Ok(Pace::Wait) => self.wait(transport),
            Err(_) => self.dropped(transport),
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
                // A command's broadcast (a rename) may have left someone
                // behind too.
                if !transport.is_disconnecting()
                    && !transport.is_producing_paused()
                    && self.me.is_some_and(|me| self.room.is_waiting(me))
                {
                    self.wait(transport);
                }
                return;
            }
            None => self.room.say(me, line),
        };
        self.paced(said, transport);
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
                let said = self.room.emote(me, args.as_bytes());
                self.paced(said, transport);
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

/// The room's drain probe: a closure that reports to the room when this
/// member's owner reached it, i.e. when the lines queued before it went
/// out.
fn drain_probe(handle: &ConnHandle, id: MemberId) -> Result<(), HandleError> {
    call_handler(handle, move |chat: &mut Chat, _| chat.room.drained(id))
}

/// How the room reaches a chat connection's owner.
pub const HOOKS: MemberHooks = MemberHooks {
    farewell,
    drain_probe,
};

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
    /// How long a member behind may take nothing before it is dropped,
    /// and then has to read what it was owed before it is aborted
    /// (`--drop-grace`).
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
                Room::new(config.max_nick_len, HOOKS).with_drop_grace(config.drop_grace),
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

    /// Runs both members' inboxes until the sender is neither paused nor
    /// holding input back (or `rounds` passes, which fails the test).
    fn pump(sender: &mut Harness<ChatProtocol>, others: &mut [&mut Harness<ChatProtocol>]) {
        for _ in 0..10_000 {
            for o in others.iter_mut() {
                o.run_inbox();
            }
            sender.run_inbox();
            if !sender.is_paused() && sender.unread().is_empty() {
                return;
            }
        }
        panic!("the sender stayed paused");
    }

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|k| format!("line {k}\n").into_bytes())
            .collect()
    }

    fn said(n: usize) -> String {
        (0..n).map(|k| format!("<{ME}> line {k}\r\n")).collect()
    }

    #[test]
    fn a_paste_far_bigger_than_every_queue_pauses_its_sender_and_reaches_everyone() {
        for chunk in [1, 7, 64, usize::MAX] {
            let room = room();
            let mut sender = Harness::with_inbox_capacity(chat(&room), 8);
            let mut other = Harness::with_inbox_capacity(chat(&room), 8);
            sender.connect();
            other.connect();
            sender.run_inbox();
            sender.take_output();
            other.take_output();
            sender.feed_chunked(&lines(500), chunk);
            assert!(sender.is_paused(), "a member is behind: the sender waits");
            pump(&mut sender, &mut [&mut other]);
            other.run_inbox();
            sender.run_inbox();
            assert_eq!(other.take_text(), said(500), "chunk {chunk}");
            assert_eq!(sender.take_text(), said(500), "chunk {chunk}");
            assert_eq!(room.len(), 2, "nobody was dropped");
            assert!(!sender.is_closing() && !other.is_closing());
        }
    }

    #[test]
    fn a_paused_sender_is_never_dropped_and_a_stalled_member_is_after_the_grace() {
        let room = room();
        let mut sender = Harness::with_inbox_capacity(chat(&room), 8);
        let mut stuck = Harness::with_inbox_capacity(chat(&room), 8);
        sender.connect();
        stuck.connect();
        sender.run_inbox();
        sender.take_output();
        sender.feed(&lines(100));
        // The stuck member takes nothing: the sender waits, however long
        // its own queue has been drained, until the grace is up.
        for _ in 0..5 {
            sender.run_inbox();
        }
        assert!(sender.is_paused());
        assert_eq!(room.len(), 2);
        sender.advance(room.drop_grace());
        pump(&mut sender, &mut []);
        assert_eq!(room.len(), 1, "the stalled member was dropped");
        let text = sender.take_text();
        let dropped = format!("* {ME} was dropped: too slow to keep up (1 here)\r\n");
        assert_eq!(text.replace(&dropped, ""), said(100));
        assert!(text.contains(&dropped));
        assert!(!sender.is_closing());
    }

    #[test]
    fn quit_while_paused_comes_in_its_place_after_the_paste() {
        let room = room();
        let mut sender = Harness::with_inbox_capacity(chat(&room), 8);
        let mut other = Harness::with_inbox_capacity(chat(&room), 8);
        sender.connect();
        other.connect();
        sender.run_inbox();
        sender.take_output();
        other.take_output();
        let mut input = lines(60);
        input.extend_from_slice(b"/quit\nnever said\n");
        sender.feed(&input);
        assert!(sender.is_paused());
        for _ in 0..10_000 {
            if sender.is_closing() {
                break;
            }
            other.run_inbox();
            sender.run_inbox();
        }
        assert_eq!(sender.closing(), Closing::Lose);
        assert!(sender.take_text().ends_with("* bye\r\n"));
        sender.disconnect(Reason::Done);
        other.run_inbox();
        assert_eq!(
            other.take_text(),
            said(60) + &format!("* {ME} left (1 here)\r\n")
        );
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
