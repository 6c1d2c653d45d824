//! [`Room`]: the state the chat's connections share — who is here, under
//! which name — and the broadcast that reaches them without ever waiting
//! on any of them.
//!
//! # Why broadcasts cannot stall
//!
//! A member is a [`ConnHandle`]: a bounded inbox in front of the
//! connection's owner thread. A broadcast only *queues* a line in each
//! inbox (`try_send`); the owners write to their sockets on their own
//! threads. A client that stops reading blocks its own owner, its inbox
//! fills up, and the next broadcast finds it full: that member is a *slow
//! consumer*. It is taken out of the room at once, the drop is logged
//! (`dropped slow consumer 127.0.0.1:5000: 1023 lines queued`), the others
//! are told it left, and everyone else goes on.
//!
//! The last slot of every inbox is kept for the farewell: a closure that
//! writes why the client was dropped, then closes. A client that was only
//! behind reads every line it was owed, then the reason, then EOF. A client
//! that never reads again never reaches it: the connection is given
//! [`DEFAULT_DROP_GRACE`] (`--drop-grace`) to get there, and is then
//! aborted ([`ConnHandle::close_within`]), so that it does not hold its
//! worker until the write timeout. Nobody else waits for it meanwhile.
//!
//! # One order for everyone
//!
//! Senders run on different owner threads. The fan-out runs while the room
//! lock is held, so lines enter every inbox in the same global order, and
//! each inbox is a FIFO: every member receives every line exactly once, in
//! the order the room accepted them, from the moment it joined. The lock is
//! held only to look at the member list and to `try_send`, which never
//! blocks; no socket I/O happens under it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::transport::{ConnHandle, HandleError};

/// Default longest nick, in characters.
pub const DEFAULT_MAX_NICK_LEN: usize = 16;

/// How long a member dropped as a slow consumer has, by default, to read
/// the lines it was owed and its farewell before its connection is
/// aborted (`--drop-grace`).
pub const DEFAULT_DROP_GRACE: Duration = Duration::from_secs(5);

/// Sends a dropped member its farewell line and asks its owner to close
/// after it, using one inbox slot. The chat protocol supplies it, because
/// only it knows its own concrete type (see [`ConnHandle::call`]).
pub type Farewell = fn(&ConnHandle, Vec<u8>) -> Result<(), HandleError>;

/// Identifies one member for as long as it is in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberId(u64);

/// What [`Room::join`] tells the newcomer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The newcomer's ticket for every later call.
    pub id: MemberId,
    /// Members present now, the newcomer included.
    pub here: usize,
    /// The name others see until a nick is chosen: the peer's `ip:port`.
    pub name: String,
}

/// The member is no longer in the room: it was dropped as a slow consumer
/// (or already left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl fmt::Display for Gone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no longer in the room")
    }
}

impl std::error::Error for Gone {}

/// Why a nick was refused. The `Display` text is told to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NickError {
    /// No nick given.
    Empty,
    /// More characters than the room allows.
    TooLong {
        /// The room's limit.
        max: usize,
    },
    /// The first character is not an ASCII letter.
    BadStart,
    /// A character outside `A-Z a-z 0-9 _ -`.
    BadChar(char),
    /// Another member has it (compared without case).
    Taken(String),
    /// The asker is no longer in the room.
    Gone,
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NickError::Empty => f.write_str("usage: /nick NAME"),
            NickError::TooLong { max } => write!(f, "a nick has at most {max} characters"),
            NickError::BadStart => f.write_str("a nick starts with a letter"),
            NickError::BadChar(c) => write!(
                f,
                "a nick is made of letters, digits, '_' and '-', not {:?}",
                c
            ),
            NickError::Taken(nick) => write!(f, "{nick} is taken"),
            NickError::Gone => f.write_str("you are no longer in the room"),
        }
    }
}

impl std::error::Error for NickError {}

/// Checks a nick's spelling: 1 to `max` ASCII letters, digits, `_` or `-`,
/// starting with a letter. (Addresses contain `.` or `:`, so a nick can
/// never pass for another member's address.)
pub fn check_nick(nick: &str, max: usize) -> Result<(), NickError> {
    let mut chars = nick.chars();
    let first = chars.next().ok_or(NickError::Empty)?;
    if !first.is_ascii_alphabetic() {
        return Err(NickError::BadStart);
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(NickError::BadChar(bad));
    }
    // Only ASCII is left, so bytes are characters.
    if nick.len() > max {
        return Err(NickError::TooLong { max });
    }
    Ok(())
}

/// Text from a client made safe to show on other people's terminals:
/// invalid UTF-8 becomes U+FFFD (so no lone 0xFF reaches a telnet client
/// as a command), and control characters other than tab become `?` (so no
/// one can move another's cursor or clear their screen).
pub fn printable(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

struct Member {
    id: MemberId,
    handle: ConnHandle,
    addr: String,
    nick: Option<String>,
}

impl Member {
    fn name(&self) -> &str {
        self.nick.as_deref().unwrap_or(&self.addr)
    }
}

#[derive(Default)]
struct State {
    /// In joining order, which `/who` shows.
    members: Vec<Member>,
    next_id: u64,
}

impl State {
    fn position(&self, id: MemberId) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    fn member(&self, id: MemberId) -> Result<&Member, Gone> {
        self.position(id).map(|i| &self.members[i]).ok_or(Gone)
    }
}

/// A member's inbox has no room for a line (see the [module docs](self)).
struct Slow {
    queued: usize,
}

/// Queues `line` for `member`, keeping the inbox's last slot for the
/// farewell. `Ok(false)`: the connection is already gone (its
/// `connection_lost` will make it leave); skip it.
fn offer(member: &Member, line: &[u8]) -> Result<bool, Slow> {
    let handle = &member.handle;
    let for_lines = handle.capacity().saturating_sub(1).max(1);
    let queued = handle.queued();
    if queued >= for_lines {
        return Err(Slow { queued });
    }
    match handle.write(line) {
        Ok(()) => Ok(true),
        Err(HandleError::Full) => Err(Slow {
            queued: handle.queued(),
        }),
        Err(HandleError::Closed) => Ok(false),
    }
}

/// Everyone connected to one chat service. See the [module docs](self).
pub struct Room {
    state: Mutex<State>,
    max_nick_len: usize,
    farewell: Farewell,
    drop_grace: Duration,
}

impl fmt::Debug for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Room")
            .field("members", &self.len())
            .field("max_nick_len", &self.max_nick_len)
            .finish()
    }
}

impl Room {
    /// An empty room whose nicks have at most `max_nick_len` characters and
    /// whose dropped members are sent off with `farewell`.
    pub fn new(max_nick_len: usize, farewell: Farewell) -> Self {
        Room {
            state: Mutex::new(State::default()),
            max_nick_len: max_nick_len.max(1),
            farewell,
            drop_grace: DEFAULT_DROP_GRACE,
        }
    }

    /// The same room, giving a dropped slow consumer `grace` (instead of
    /// [`DEFAULT_DROP_GRACE`]) to read what it was owed before its
    /// connection is aborted.
    pub fn with_drop_grace(mut self, grace: Duration) -> Self {
        self.drop_grace = grace;
        self
    }

    /// How long a dropped slow consumer has before it is aborted.
    pub fn drop_grace(&self) -> Duration {
        self.drop_grace
    }

    /// The longest nick allowed.
    pub fn max_nick_len(&self) -> usize {
        self.max_nick_len
    }

    /// The room's state. A panic elsewhere while the lock was held cannot
    /// leave the member list half-built (every change is one push or one
    /// remove), so a poisoned lock is taken over rather than spread.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Members present now.
    pub fn len(&self) -> usize {
        self.lock().members.len()
    }

    /// Whether nobody is here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the connection behind `handle`; the others are told
    /// `* ADDR joined (N here)`. From now on it receives every broadcast.
    pub fn join(&self, handle: ConnHandle) -> Joined {
        let mut state = self.lock();
        let id = MemberId(state.next_id);
        state.next_id += 1;
        let name = handle.peer().to_string();
        state.members.push(Member {
            id,
            handle,
            addr: name.clone(),
            nick: None,
        });
        let here = state.members.len();
        let notice = format!("* {name} joined ({here} here)\r\n");
        self.broadcast(&mut state, notice.into_bytes(), Some(id));
        Joined {
            id,
            here: state.members.len(),
            name,
        }
    }

    /// Takes `id` out of the room; the others are told `* NAME left (N
    /// here)`. Does nothing if it already left or was dropped.
    pub fn leave(&self, id: MemberId) {
        let mut state = self.lock();
        if let Some(i) = state.position(id) {
            let gone = state.members.remove(i);
            let notice = format!("* {} left ({} here)\r\n", gone.name(), state.members.len());
            self.broadcast(&mut state, notice.into_bytes(), None);
        }
    }

    /// Sends `<NAME> text` to everyone, the sender included.
    pub fn say(&self, id: MemberId, text: &[u8]) -> Result<(), Gone> {
        let mut state = self.lock();
        let line = format!("<{}> {}\r\n", state.member(id)?.name(), printable(text));
        self.broadcast(&mut state, line.into_bytes(), None);
        Ok(())
    }

    /// Sends `* NAME action` to everyone, the sender included (`/me`).
    pub fn emote(&self, id: MemberId, action: &[u8]) -> Result<(), Gone> {
        let mut state = self.lock();
        let line = format!("* {} {}\r\n", state.member(id)?.name(), printable(action));
        self.broadcast(&mut state, line.into_bytes(), None);
        Ok(())
    }

    /// Gives `id` the nick `nick`, if it is well-formed and nobody else
    /// has it; everyone is told `* OLD is now known as NEW`. Returns the
    /// old name.
    pub fn rename(&self, id: MemberId, nick: &str) -> Result<String, NickError> {
        check_nick(nick, self.max_nick_len)?;
        let mut state = self.lock();
        let i = state.position(id).ok_or(NickError::Gone)?;
        if let Some(other) = state.members.iter().find(|m| {
            m.id != id
                && m.nick
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(nick))
        }) {
            return Err(NickError::Taken(other.name().to_string()));
        }
        let old = state.members[i].name().to_string();
        if old == nick {
            return Ok(old);
        }
        state.members[i].nick = Some(nick.to_string());
        let notice = format!("* {old} is now known as {nick}\r\n");
        self.broadcast(&mut state, notice.into_bytes(), None);
        Ok(old)
    }

    /// The names of everyone here, in joining order.
    pub fn who(&self) -> Vec<String> {
        self.lock()
            .members
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    /// The name `id` goes by now.
    pub fn name_of(&self, id: MemberId) -> Result<String, Gone> {
        Ok(self.lock().member(id)?.name().to_string())
    }

    /// Queues `line` for every member but `except`, under the lock (that is
    /// what gives every inbox the same order). Members found slow are
    /// dropped, and the notice of their going is broadcast in turn, which
    /// may find more; each round removes someone, so this ends.
    fn broadcast(&self, state: &mut State, line: Vec<u8>, except: Option<MemberId>) {
        let mut pending = VecDeque::from([(line, except)]);
        while let Some((line, except)) = pending.pop_front() {
            let mut slow = Vec::new();
            for member in &state.members {
                if Some(member.id) == except {
                    continue;
                }
                if let Err(Slow { queued }) = offer(member, &line) {
                    slow.push((member.id, queued));
                }
            }
            for (id, queued) in slow {
                let Some(gone) = remove_slow(state, id, queued) else {
                    continue;
                };
                if (self.farewell)(&gone.handle, farewell_line(queued).into_bytes()).is_err() {
                    // Not even the reserved slot: close it without a word.
                    gone.handle.abort_connection();
                } else {
                    // Its owner may be stuck writing to a peer that does
                    // not read: it gets the grace to reach the farewell.
                    gone.handle.close_within(self.drop_grace);
                }
                pending.push_back((dropped_notice(&gone, state), None));
            }
        }
    }

    /// Drops `id` as a slow consumer found by its own connection (its inbox
    /// has no room left for the rest of its own input): logged and
    /// announced like any other drop. Returns the line to tell it, which
    /// the caller writes directly; `Err(Gone)` if it was already out.
    pub fn drop_slow(&self, id: MemberId) -> Result<String, Gone> {
        let mut state = self.lock();
        let queued = state.member(id)?.handle.queued();
        let gone = remove_slow(&mut state, id, queued).ok_or(Gone)?;
        gone.handle.close_within(self.drop_grace);
        let notice = dropped_notice(&gone, &state);
        self.broadcast(&mut state, notice, None);
        Ok(farewell_line(queued))
    }
}

/// Takes a slow member out and logs it.
fn remove_slow(state: &mut State, id: MemberId, queued: usize) -> Option<Member> {
    let i = state.position(id)?;
    let gone = state.members.remove(i);
    log::warn!("dropped slow consumer {}: {queued} lines queued", gone.addr);
    Some(gone)
}

/// What a slow consumer is told, if it ever reads again.
fn farewell_line(queued: usize) -> String {
    format!("* you are being disconnected: {queued} lines were waiting for you to read them\r\n")
}

/// What the others are told when a slow consumer is dropped.
fn dropped_notice(gone: &Member, state: &State) -> Vec<u8> {
    format!(
        "* {} was dropped: too slow to keep up ({} here)\r\n",
        gone.name(),
        state.members.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Addr;
    use crate::transport::{Command, ConnInfo, Transport};
    use crossbeam_channel::Receiver;

    /// A member's far end: the transport that owns the inbox, and the
    /// inbox's receiving side, read as the owner would.
    struct Client {
        _transport: Transport,
        handle: ConnHandle,
        inbox: Receiver<Command>,
    }

    impl Client {
        fn new(port: u16, capacity: usize) -> Client {
            let peer = Addr::Tcp(format!("127.0.0.1:{port}").parse().unwrap());
            let info = ConnInfo {
                peer: peer.clone(),
                host: peer,
                session: 0,
            };
            let mut transport = Transport::new(info, capacity);
            let handle = transport.handle();
            let inbox = transport.take_inbox().unwrap();
            Client {
                _transport: transport,
                handle,
                inbox,
            }
        }

        /// Every line queued so far; farewells show as `FAREWELL ...`.
        fn lines(&self) -> Vec<String> {
            let mut out = Vec::new();
            while let Ok(command) = self.inbox.try_recv() {
                match command {
                    Command::Write(bytes) => {
                        let text = String::from_utf8(bytes).unwrap();
                        assert!(text.ends_with("\r\n"), "{text:?} lacks CRLF");
                        out.push(text.trim_end_matches("\r\n").to_string());
                    }
                    Command::Call(_) => out.push("FAREWELL".to_string()),
                    Command::Lose => out.push("LOSE".to_string()),
                    Command::Abort => out.push("ABORT".to_string()),
                    Command::Pause => out.push("PAUSE".to_string()),
                    Command::Resume => out.push("RESUME".to_string()),
                }
            }
            out
        }
    }

    /// The test farewell: one closure, like the real one; it shows in
    /// [`Client::lines`] as `FAREWELL`.
    fn farewell(handle: &ConnHandle, text: Vec<u8>) -> Result<(), HandleError> {
        let _ = text;
        handle.call::<crate::protocols::echo::Echo, _>(|_, t| t.lose_connection())
    }

    fn room() -> Room {
        Room::new(DEFAULT_MAX_NICK_LEN, farewell)
    }

    #[test]
    fn join_says_who_and_how_many_to_the_others_only() {
        let room = room();
        let a = Client::new(1, 16);
        let b = Client::new(2, 16);
        let ja = room.join(a.handle.clone());
        assert_eq!((ja.here, ja.name.as_str()), (1, "127.0.0.1:1"));
        let jb = room.join(b.handle.clone());
        assert_eq!(jb.here, 2);
        assert_eq!(a.lines(), ["* 127.0.0.1:2 joined (2 here)"]);
        assert!(b.lines().is_empty());
        room.leave(ja.id);
        room.leave(ja.id);
        assert_eq!(b.lines(), ["* 127.0.0.1:1 left (1 here)"]);
        assert_eq!(room.who(), ["127.0.0.1:2"]);
    }

    #[test]
    fn say_reaches_everyone_sender_included_named_by_sender() {
        let room = room();
        let a = Client::new(1, 16);
        let b = Client::new(2, 16);
        let ja = room.join(a.handle.clone());
        room.join(b.handle.clone());
        a.lines();
        room.say(ja.id, b"hello").unwrap();
        room.emote(ja.id, b"waves").unwrap();
        for c in [&a, &b] {
            assert_eq!(c.lines(), ["<127.0.0.1:1> hello", "* 127.0.0.1:1 waves"]);
        }
    }

    #[test]
    fn every_member_gets_every_line_once_in_one_order_from_many_threads() {
        let room = std::sync::Arc::new(room());
        let clients: Vec<Client> = (0..8).map(|i| Client::new(100 + i, 100_000)).collect();
        let ids: Vec<MemberId> = clients
            .iter()
            .map(|c| room.join(c.handle.clone()).id)
            .collect();
        for c in &clients {
            c.lines();
        }
        let threads: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(n, &id)| {
                let room = room.clone();
                std::thread::spawn(move || {
                    for k in 0..500 {
                        room.say(id, format!("{n}-{k}").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let first = clients[0].lines();
        assert_eq!(first.len(), 8 * 500);
        let mut sorted = first.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), first.len(), "a line arrived twice");
        for c in &clients[1..] {
            assert_eq!(c.lines(), first);
        }
        // Each sender's own lines keep their order within the global one.
        for n in 0..8 {
            let prefix = format!("<127.0.0.1:{}> {n}-", 100 + n);
            let ks: Vec<usize> = first
                .iter()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(|k| k.parse().unwrap())
                .collect();
            assert_eq!(ks, (0..500).collect::<Vec<_>>());
        }
    }

    #[test]
    fn nick_rules() {
        let max = DEFAULT_MAX_NICK_LEN;
        assert_eq!(check_nick("alice", max), Ok(()));
        assert_eq!(check_nick("a-b_9", max), Ok(()));
        assert_eq!(check_nick("", max), Err(NickError::Empty));
        assert_eq!(check_nick("9lives", max), Err(NickError::BadStart));
        assert_eq!(check_nick("_x", max), Err(NickError::BadStart));
        assert_eq!(check_nick("a b", max), Err(NickError::BadChar(' ')));
        assert_eq!(check_nick("a:b", max), Err(NickError::BadChar(':')));
        assert_eq!(check_nick("zoë", max), Err(NickError::BadChar('ë')));
        assert_eq!(check_nick(&"a".repeat(max), max), Ok(()));
        assert_eq!(
            check_nick(&"a".repeat(max + 1), max),
            Err(NickError::TooLong { max })
        );
        assert_eq!(
            NickError::BadChar(' ').to_string(),
            "a nick is made of letters, digits, '_' and '-', not ' '"
        );
    }

    #[test]
    fn nicks_are_unique_without_case_and_renames_are_announced() {
        let room = room();
        let a = Client::new(1, 16);
        let b = Client::new(2, 16);
        let ja = room.join(a.handle.clone());
        let jb = room.join(b.handle.clone());
        a.lines();
        assert_eq!(room.rename(ja.id, "alice").unwrap(), "127.0.0.1:1");
        assert_eq!(b.lines(), ["* 127.0.0.1:1 is now known as alice"]);
        assert_eq!(a.lines(), ["* 127.0.0.1:1 is now known as alice"]);
        assert_eq!(
            room.rename(jb.id, "ALICE"),
            Err(NickError::Taken("alice".into()))
        );
        // Renaming to one's own nick, in another case, is allowed.
        assert_eq!(room.rename(ja.id, "Alice").unwrap(), "alice");
        assert_eq!(room.rename(ja.id, "Alice").unwrap(), "Alice");
        assert_eq!(b.lines(), ["* alice is now known as Alice"]);
        room.say(ja.id, b"hi").unwrap();
        assert_eq!(b.lines(), ["<Alice> hi"]);
        assert_eq!(room.who(), ["Alice", "127.0.0.1:2"]);
        room.leave(ja.id);
        assert_eq!(b.lines(), ["* Alice left (1 here)"]);
        assert_eq!(room.rename(ja.id, "bob"), Err(NickError::Gone));
        // The nick is free again once its holder left.
        assert!(room.rename(jb.id, "alice").is_ok());
    }

    #[test]
    fn control_bytes_and_bad_utf8_never_reach_other_terminals() {
        assert_eq!(printable(b"a\x1b[2Jb\x07c\td"), "a?[2Jb?c\td");
        assert_eq!(printable(b"x\xffy"), "x\u{fffd}y");
        assert_eq!(printable("zoë".as_bytes()), "zoë");
    }

    #[test]
    fn a_full_inbox_drops_only_that_member_with_a_farewell() {
        let room = room();
        let fast = Client::new(1, 8);
        let slow = Client::new(2, 8);
        let jf = room.join(fast.handle.clone());
        let js = room.join(slow.handle.clone());
        fast.lines();
        // The slow one never drains: 7 lines fit, the 8th slot is the
        // farewell's.
        for k in 0..20 {
            room.say(jf.id, format!("{k}").as_bytes()).unwrap();
            let got = fast.lines();
            assert_eq!(got[0], format!("<127.0.0.1:1> {k}"));
            if k == 7 {
                assert_eq!(
                    got[1],
                    "* 127.0.0.1:2 was dropped: too slow to keep up (1 here)"
                );
            } else {
                assert_eq!(got.len(), 1, "{got:?}");
            }
        }
        let owed = slow.lines();
        assert_eq!(owed.len(), 8);
        assert_eq!(owed[6], "<127.0.0.1:1> 6");
        assert_eq!(owed[7], "FAREWELL");
        assert_eq!(room.who(), ["127.0.0.1:1"]);
        assert_eq!(room.say(js.id, b"late"), Err(Gone));
        room.leave(js.id);
        assert!(fast.lines().is_empty(), "a dropped member leaves once");
    }

    #[test]
    fn dropping_a_sender_mid_broadcast_still_reaches_everyone_else() {
        let room = room();
        let a = Client::new(1, 8);
        let b = Client::new(2, 8);
        let c = Client::new(3, 1000);
        let ja = room.join(a.handle.clone());
        room.join(b.handle.clone());
        room.join(c.handle.clone());
        // Neither a nor b drains; both fall behind together.
        let mut said = 0;
        while room.say(ja.id, format!("{said}").as_bytes()).is_ok() {
            said += 1;
            assert!(said < 100);
        }
        let got = c.lines();
        assert_eq!(got.iter().filter(|l| l.starts_with("<")).count(), said);
        assert!(
            got.iter()
                .any(|l| l.starts_with("* 127.0.0.1:1 was dropped"))
        );
        assert!(
            got.iter()
                .any(|l| l.starts_with("* 127.0.0.1:2 was dropped"))
        );
        assert_eq!(room.len(), 1);
    }

    #[test]
    fn closed_connections_are_skipped_until_they_leave() {
        let room = room();
        let a = Client::new(1, 8);
        let ja = room.join(a.handle.clone());
        let b = Client::new(2, 8);
        let jb = room.join(b.handle.clone());
        drop(b);
        room.say(ja.id, b"still here").unwrap();
        assert_eq!(
            a.lines(),
            ["* 127.0.0.1:2 joined (2 here)", "<127.0.0.1:1> still here"]
        );
        assert_eq!(room.len(), 2);
        room.leave(jb.id);
        assert_eq!(room.len(), 1);
    }

    #[test]
    fn with_a_one_slot_inbox_the_drop_is_an_abort() {
        // No slot to spare for a farewell: the room aborts the connection.
        let room = room();
        let a = Client::new(1, 1);
        let b = Client::new(2, 16);
        room.join(a.handle.clone());
        let jb = room.join(b.handle.clone());
        room.say(jb.id, b"x").unwrap();
        assert_eq!(a.lines(), ["* 127.0.0.1:2 joined (2 here)"]);
        assert_eq!(room.len(), 1);
    }
}
