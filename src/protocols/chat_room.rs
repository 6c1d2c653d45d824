//! [`Room`]: the state the chat's connections share — who is here, under
//! which name — and the broadcast that reaches them without ever waiting
//! on any of them.
//!
//! # Why broadcasts cannot stall
//!
//! A member is a [`ConnHandle`]: a bounded inbox (`--outbound-queue`
//! commands) in front of the connection's owner. A broadcast only *queues*
//! a line in each inbox (`try_send`); the owners write to their sockets on
//! their own threads. Nothing in the room ever waits on a socket.
//!
//! # Flow control: the sender waits for the slowest reader
//!
//! A member whose peer reads slower than someone sends falls behind: its
//! queue grows. Rather than dropping it, the room slows the sender down,
//! with the engine's flow control (Twisted's `IPushProducer`, promise 7 of
//! the engine contract):
//!
//! * When a broadcast leaves any member's queue at or above
//!   [`HIGH_WATER`] of its capacity, the sender is *paused*: [`Room::say`]
//!   answers [`Pace::Wait`], the chat pauses its connection's input (the
//!   line framer keeps the rest of the read, the engine reads nothing
//!   more, the rest waits in the kernel and TCP pushes back on the
//!   sending client), and the room notes which members it waits on.
//! * For each member waited on, the room queues a *drain probe* behind
//!   the lines in its inbox. When the member's owner reaches it, the
//!   lines before it have gone out; if the queue is now below
//!   [`LOW_WATER`] of its capacity the member is released, otherwise the
//!   probe is queued again behind what is there. No timer, no polling.
//! * A sender is resumed ([`ConnHandle::resume_producing`]) when every
//!   member it waits on was released, left or was dropped.
//!
//! So a paste of 50,000 lines reaches every member, in order, at the pace
//! of the slowest reader, and the server holds at most a queue's worth of
//! lines per member: the rest of the paste is still in the sender's
//! kernel buffers, or in its client. The gap between the marks makes one
//! pause and one resume carry many lines, not one each.
//!
//! The last [`RESERVED_SLOTS`] of every inbox are not used by lines: they
//! keep room for the drain probe, the resume and the farewell, which must
//! always get in. Lines that find a queue at its line capacity even so
//! (more members sending at once than the gap above [`HIGH_WATER`] holds)
//! are the one case where a reading member is dropped; the log says so.
//!
//! # Dropping is for members that make no progress
//!
//! A member that stopped reading would keep its senders paused for ever.
//! So a member is dropped when it is *behind* (at or above [`HIGH_WATER`])
//! and has taken nothing from its queue for `--drop-grace`
//! ([`DEFAULT_DROP_GRACE`]): a paused sender checks the members it waits
//! on when that grace is up ([`Room::check_stalled`]), and broadcasts
//! check the members they find behind. A member that keeps reading is
//! never dropped, however fast anyone sends; a paused sender is never
//! dropped for sending. The drop is logged (`dropped slow consumer
//! 127.0.0.1:5000: 16 lines queued, none taken for 5s`), the others are
//! told it left, and everyone it held back is resumed.
//!
//! The dropped member's farewell is a closure that writes why it was
//! dropped, then closes. A client that was only behind reads every line
//! it was owed, then the reason, then EOF. A client that never reads again
//! never reaches it: the connection gets the grace again to get there and
//! is then aborted ([`ConnHandle::close_within`]), so that it does not
//! hold its worker until the write timeout.
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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::transport::{ConnHandle, HandleError};

/// Default longest nick, in characters.
pub const DEFAULT_MAX_NICK_LEN: usize = 16;

/// How long a member dropped as a slow consumer has, by default, to read
/// the lines it was owed and its farewell before its connection is
/// aborted (`--drop-grace`).
pub const DEFAULT_DROP_GRACE: Duration = Duration::from_secs(5);

/// The fraction of a member's queue at which a broadcast that leaves it
/// there pauses the sender (see the [module docs](self)).
pub const HIGH_WATER: f64 = 0.5;

/// The fraction of a member's queue below which the senders it held back
/// are resumed. Well under [`HIGH_WATER`], so that a resume lets a good
/// run of lines through before the next pause.
pub const LOW_WATER: f64 = 0.25;

/// Inbox slots of every member kept free of lines: one for the drain
/// probe, one for a resume, one for the farewell.
pub const RESERVED_SLOTS: usize = 3;

/// Sends a dropped member its farewell line and asks its owner to close
/// after it, using one inbox slot. The chat protocol supplies it, because
/// only it knows its own concrete type (see [`ConnHandle::call`]).
pub type Farewell = fn(&ConnHandle, Vec<u8>) -> Result<(), HandleError>;

/// Queues the drain probe: a closure that calls [`Room::drained`] with
/// the member's id when its owner reaches it. Supplied by the chat
/// protocol, like [`Farewell`].
pub type DrainProbe = fn(&ConnHandle, MemberId) -> Result<(), HandleError>;

/// What the room does through a member's own connection.
#[derive(Debug, Clone, Copy)]
pub struct MemberHooks {
    /// Sends a dropped member off.
    pub farewell: Farewell,
    /// Queues a drain probe.
    pub drain_probe: DrainProbe,
}

/// What a sender must do after a broadcast (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pace {
    /// Go on.
    Go,
    /// A member is behind: pause the connection's input until the room
    /// resumes it.
    Wait,
}

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

pub use super::nick::{NickError, check_nick};

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
    /// Commands the room queued for it (lines, probes, resumes):
    /// `queued_total - handle.queued()` is what it has taken so far.
    queued_total: u64,
    /// While behind: what it had taken when last seen to take something,
    /// and when.
    progress: Option<(u64, Instant)>,
    /// A drain probe is in its inbox.
    probe_queued: bool,
    /// Paused senders waiting for this member to drain.
    waiters: Vec<MemberId>,
    /// As a sender: the members it waits on; paused while not empty.
    waiting_on: Vec<MemberId>,
}

impl Member {
    fn name(&self) -> &str {
        self.nick.as_deref().unwrap_or(&self.addr)
    }

    /// Lines at or above this many queued: behind.
    fn high(&self) -> usize {
        mark(self.handle.capacity(), HIGH_WATER).max(1)
    }

    /// Below this many queued: drained.
    fn low(&self) -> usize {
        mark(self.handle.capacity(), LOW_WATER).min(self.high() - 1)
    }

    fn taken(&self) -> u64 {
        self.queued_total
            .saturating_sub(self.handle.queued() as u64)
    }

    /// Updates what is known of its progress at `now`; returns whether it
    /// is behind and has taken nothing for `grace`.
    fn stalled(&mut self, now: Instant, grace: Duration) -> bool {
        if self.handle.queued() < self.high() {
            self.progress = None;
            return false;
        }
        let taken = self.taken();
        match self.progress {
            Some((seen, since)) if seen == taken => now.duration_since(since) >= grace,
            _ => {
                self.progress = Some((taken, now));
                false
            }
        }
    }
}

/// `fraction` of `capacity` lines, rounded down.
fn mark(capacity: usize, fraction: f64) -> usize {
    (capacity as f64 * fraction) as usize
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

    fn member_mut(&mut self, id: MemberId) -> Option<&mut Member> {
        let i = self.position(id)?;
        Some(&mut self.members[i])
    }
}

/// A member's inbox has no room for a line (see the [module docs](self)).
struct Full {
    queued: usize,
}

/// What [`offer`] did.
enum Offered {
    /// Queued; the member now has this many commands queued.
    Queued(usize),
    /// The connection is already gone (its `connection_lost` will make it
    /// leave): skip it.
    Closed,
}

/// Queues `line` for `member`, keeping the last [`RESERVED_SLOTS`] of the
/// inbox free.
fn offer(member: &mut Member, line: &Arc<[u8]>) -> Result<Offered, Full> {
    let handle = &member.handle;
    let for_lines = handle.capacity().saturating_sub(RESERVED_SLOTS).max(1);
    let queued = handle.queued();
    if queued >= for_lines {
        return Err(Full { queued });
    }
    match handle.write_shared(line.clone()) {
        Ok(()) => {
            member.queued_total += 1;
            Ok(Offered::Queued(queued + 1))
        }
        Err(HandleError::Full) => Err(Full {
            queued: handle.queued(),
        }),
        Err(HandleError::Closed) => Ok(Offered::Closed),
    }
}

/// Everyone connected to one chat service. See the [module docs](self).
pub struct Room {
    state: Mutex<State>,
    max_nick_len: usize,
    hooks: MemberHooks,
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
    /// An empty room whose nicks have at most `max_nick_len` characters,
    /// reaching its members' owners through `hooks`.
    pub fn new(max_nick_len: usize, hooks: MemberHooks) -> Self {
        Room {
            state: Mutex::new(State::default()),
            max_nick_len: max_nick_len.max(1),
            hooks,
            drop_grace: DEFAULT_DROP_GRACE,
        }
    }

    /// The same room with `grace` (instead of [`DEFAULT_DROP_GRACE`]) as
    /// the time a member behind may take nothing before it is dropped,
    /// and the time a dropped member then has to read what it was owed
    /// before its connection is aborted.
    pub fn with_drop_grace(mut self, grace: Duration) -> Self {
        self.drop_grace = grace;
        self
    }

    /// How long a member behind may take nothing, and a dropped one has
    /// before it is aborted.
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
            queued_total: 0,
            progress: None,
            probe_queued: false,
            waiters: Vec::new(),
            waiting_on: Vec::new(),
        });
        let here = state.members.len();
        let notice = format!("* {name} joined ({here} here)\r\n");
        let _ = self.broadcast(&mut state, notice.into_bytes(), Some(id), None);
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
        if let Some(gone) = remove(&mut state, id) {
            let notice = format!("* {} left ({} here)\r\n", gone.name(), state.members.len());
            let _ = self.broadcast(&mut state, notice.into_bytes(), None, None);
        }
    }

    /// Sends `<NAME> text` to everyone, the sender included; says whether
    /// the sender must now wait (see the [module docs](self)).
    pub fn say(&self, id: MemberId, text: &[u8]) -> Result<Pace, Gone> {
        let mut state = self.lock();
        let line = format!("<{}> {}\r\n", state.member(id)?.name(), printable(text));
        Ok(self.broadcast(&mut state, line.into_bytes(), None, Some(id)))
    }

    /// Sends `* NAME action` to everyone, the sender included (`/me`);
    /// paced as [`Room::say`].
    pub fn emote(&self, id: MemberId, action: &[u8]) -> Result<Pace, Gone> {
        let mut state = self.lock();
        let line = format!("* {} {}\r\n", state.member(id)?.name(), printable(action));
        Ok(self.broadcast(&mut state, line.into_bytes(), None, Some(id)))
    }

    /// Whether `id` is paused, waiting for members to drain: a sender
    /// checks after a command whose broadcast it did not pace itself.
    pub fn is_waiting(&self, id: MemberId) -> bool {
        self.lock()
            .member(id)
            .is_ok_and(|m| !m.waiting_on.is_empty())
    }

    /// Gives `id` the nick `nick`, if it is well-formed and nobody else
    /// has it; everyone is told `* OLD is now known as NEW`. Returns the
    /// old name.
    pub fn rename(&self, id: MemberId, nick: &str) -> Result<String, NickError> {
        check_nick(nick, self.max_nick_len)?;
        // Taken if another's nick looks the same: case and look-alike
        // letters aside (see `nick::skeleton`).
        let wanted = super::nick::skeleton(nick);
        let mut state = self.lock();
        let i = state.position(id).ok_or(NickError::Gone)?;
        if let Some(other) = state.members.iter().find(|m| {
            m.id != id
                && m.nick
                    .as_deref()
                    .is_some_and(|n| super::nick::skeleton(n) == wanted)
        }) {
            return Err(NickError::Taken(other.name().to_string()));
        }
        let old = state.members[i].name().to_string();
        if old == nick {
            return Ok(old);
        }
        state.members[i].nick = Some(nick.to_string());
        let notice = format!("* {old} is now known as {nick}\r\n");
        let _ = self.broadcast(&mut state, notice.into_bytes(), None, Some(id));
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

    /// Queues `line` for every member but `except`, under the lock (that is
    /// what gives every inbox the same order). If it leaves a member
    /// behind, `sender` (if any) waits on it. Members found stalled or
    /// full are dropped, and the notice of their going is broadcast in
    /// turn, which may find more; each round removes someone, so this
    /// ends.
    fn broadcast(
        &self,
        state: &mut State,
        line: Vec<u8>,
        except: Option<MemberId>,
        sender: Option<MemberId>,
    ) -> Pace {
        let mut pending = VecDeque::from([(line, except)]);
        let mut behind = Vec::new();
        let mut now = None;
        while let Some((line, except)) = pending.pop_front() {
            // One allocation for every member's inbox.
            let line: Arc<[u8]> = line.into();
            let mut dropped = Vec::new();
            for member in &mut state.members {
                if Some(member.id) == except {
                    continue;
                }
                match offer(member, &line) {
                    Ok(Offered::Queued(queued)) if queued >= member.high() => {
                        let now = *now.get_or_insert_with(Instant::now);
                        if member.stalled(now, self.drop_grace) {
                            dropped.push((member.id, Why::Stalled(queued)));
                        } else if !behind.contains(&member.id) {
                            behind.push(member.id);
                        }
                    }
                    Ok(_) => {}
                    Err(Full { queued }) => dropped.push((member.id, Why::Full(queued))),
                }
            }
            for (id, why) in dropped {
                behind.retain(|b| *b != id);
                if let Some(notice) = self.drop_member(state, id, why) {
                    pending.push_back((notice, None));
                }
            }
        }
        match sender {
            Some(sender) if !behind.is_empty() => self.wait(state, sender, &behind),
            Some(sender) if state.member(sender).is_ok_and(|m| !m.waiting_on.is_empty()) => {
                Pace::Wait
            }
            _ => Pace::Go,
        }
    }

    /// `sender` waits on every member in `behind`, each of which gets a
    /// drain probe if it has none queued.
    fn wait(&self, state: &mut State, sender: MemberId, behind: &[MemberId]) -> Pace {
        if state.position(sender).is_none() {
            return Pace::Go;
        }
        for &id in behind {
            let Some(member) = state.member_mut(id) else {
                continue;
            };
            if !member.waiters.contains(&sender) {
                member.waiters.push(sender);
            }
            if !member.probe_queued {
                // Gone, if this fails: its `connection_lost` will make it
                // leave, which releases the sender.
                if (self.hooks.drain_probe)(&member.handle, id).is_ok() {
                    member.probe_queued = true;
                    member.queued_total += 1;
                }
            }
            if let Some(s) = state.member_mut(sender)
                && !s.waiting_on.contains(&id)
            {
                s.waiting_on.push(id);
            }
        }
        Pace::Wait
    }

    /// A drain probe reached the end of `id`'s queue (run on its owner): if
    /// the queue is below low water, the senders waiting on it are
    /// released; if not, the probe goes to the back again.
    pub fn drained(&self, id: MemberId) {
        let mut state = self.lock();
        let Some(member) = state.member_mut(id) else {
            return;
        };
        member.probe_queued = false;
        if member.waiters.is_empty() {
            return;
        }
        if member.handle.queued() >= member.low() {
            match (self.hooks.drain_probe)(&member.handle, id) {
                Ok(()) => {
                    member.probe_queued = true;
                    member.queued_total += 1;
                }
                Err(_) => {
                    // No slot: its owner is about to close it, and the
                    // leave releases the waiters.
                }
            }
            return;
        }
        let waiters = std::mem::take(&mut member.waiters);
        member.progress = None;
        release(&mut state, id, &waiters);
    }

    /// A paused sender's check at `now` (its connection's clock),
    /// `drop_grace` after it paused: drops the members it waits on that
    /// are still behind and took nothing for the grace. Returns when to
    /// check again, if it still waits.
    pub fn check_stalled(&self, sender: MemberId, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        let waiting_on = state.member(sender).ok()?.waiting_on.clone();
        let mut next: Option<Duration> = None;
        let mut notices = Vec::new();
        for id in waiting_on {
            let Some(member) = state.member_mut(id) else {
                continue;
            };
            if member.stalled(now, self.drop_grace) {
                let queued = member.handle.queued();
                if let Some(notice) = self.drop_member(&mut state, id, Why::Stalled(queued)) {
                    notices.push(notice);
                }
            } else if let Some((_, since)) = member.progress {
                let left = self
                    .drop_grace
                    .saturating_sub(now.duration_since(since))
                    .max(Duration::from_millis(1));
                next = Some(next.map_or(left, |n| n.min(left)));
            } else {
                // Below high water but not yet probed below low: it is
                // draining; look again after a grace.
                next = Some(next.map_or(self.drop_grace, |n| n.min(self.drop_grace)));
            }
        }
        for notice in notices {
            let _ = self.broadcast(&mut state, notice, None, None);
        }
        let still = state.member(sender).is_ok_and(|m| !m.waiting_on.is_empty());
        if still {
            next.or(Some(self.drop_grace))
        } else {
            None
        }
    }

    /// Drops `id`: out of the room, logged, sent its farewell, and the
    /// senders it held back released. Returns the notice for the others.
    fn drop_member(&self, state: &mut State, id: MemberId, why: Why) -> Option<Vec<u8>> {
        let gone = remove(state, id)?;
        match why {
            Why::Stalled(queued) => log::warn!(
                "dropped slow consumer {}: {queued} lines queued, none taken for {:?}",
                gone.addr,
                self.drop_grace
            ),
            Why::Full(queued) => log::warn!(
                "dropped slow consumer {}: {queued} lines queued, its queue overflowed \
                 (more members sending at once than --outbound-queue holds above high water)",
                gone.addr
            ),
        }
        let queued = match why {
            Why::Stalled(q) | Why::Full(q) => q,
        };
        if (self.hooks.farewell)(&gone.handle, farewell_line(queued).into_bytes()).is_err() {
            // Not even the reserved slot: close it without a word.
            gone.handle.abort_connection();
        } else {
            // Its owner may be stuck writing to a peer that does not
            // read: it gets the grace to reach the farewell.
            gone.handle.close_within(self.drop_grace);
        }
        Some(dropped_notice(&gone, state))
    }
}

/// Why a member is dropped, with its queue length.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// Behind and took nothing for the drop grace.
    Stalled(usize),
    /// Its queue had no room for a line.
    Full(usize),
}

/// Takes `id` out of the room: the senders waiting on it are released, and
/// it stops waiting on anyone.
fn remove(state: &mut State, id: MemberId) -> Option<Member> {
    let i = state.position(id)?;
    let gone = state.members.remove(i);
    for &target in &gone.waiting_on {
        if let Some(m) = state.member_mut(target) {
            m.waiters.retain(|w| *w != id);
        }
    }
    release(state, id, &gone.waiters);
    Some(gone)
}

/// `waiters` no longer wait on `id`; those that wait on no one now are
/// resumed.
fn release(state: &mut State, id: MemberId, waiters: &[MemberId]) {
    for &w in waiters {
        let Some(sender) = state.member_mut(w) else {
            continue;
        };
        let before = sender.waiting_on.len();
        sender.waiting_on.retain(|t| *t != id);
        if before > 0 && sender.waiting_on.is_empty() {
            // Its reserved slot: a resume always gets in. Closed: it is
            // leaving anyway.
            if sender.handle.resume_producing().is_ok() {
                sender.queued_total += 1;
            }
        }
    }
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
    use std::time::Instant;

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
                    Command::WriteShared(bytes) => {
                        let text = String::from_utf8(bytes.to_vec()).unwrap();
                        assert!(text.ends_with("\r\n"), "{text:?} lacks CRLF");
                        out.push(text.trim_end_matches("\r\n").to_string());
                    }
                    Command::Call(_) => out.push("CALL".to_string()),
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
    /// [`Client::lines`] as `CALL`.
    fn farewell(handle: &ConnHandle, text: Vec<u8>) -> Result<(), HandleError> {
        let _ = text;
        handle.call::<crate::protocols::echo::Echo, _>(|_, t| t.lose_connection())
    }

    /// The test drain probe: a closure like the real one, shown in
    /// [`Client::lines`] as `CALL` too; tests call [`Room::drained`]
    /// themselves where the owner would.
    fn drain_probe(handle: &ConnHandle, _id: MemberId) -> Result<(), HandleError> {
        handle.call::<crate::protocols::echo::Echo, _>(|_, _| {})
    }

    fn room() -> Room {
        Room::new(
            DEFAULT_MAX_NICK_LEN,
            MemberHooks {
                farewell,
                drain_probe,
            },
        )
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
        let _ = room.say(ja.id, b"hello").unwrap();
        let _ = room.emote(ja.id, b"waves").unwrap();
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
                        let _ = room.say(id, format!("{n}-{k}").as_bytes()).unwrap();
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
    fn nick_rules_are_the_nick_module_s() {
        // The spelling rules are tested in `nick`; the room applies them.
        let room = room();
        let a = Client::new(1, 16);
        let ja = room.join(a.handle.clone());
        assert_eq!(room.rename(ja.id, "émile").unwrap(), "127.0.0.1:1");
        assert_eq!(room.rename(ja.id, "a b"), Err(NickError::BadChar(' ')));
        assert_eq!(
            room.rename(ja.id, &"é".repeat(17)),
            Err(NickError::TooLong { max: 16 })
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
        let _ = room.say(ja.id, b"hi").unwrap();
        assert_eq!(b.lines(), ["<Alice> hi"]);
        assert_eq!(room.who(), ["Alice", "127.0.0.1:2"]);
        room.leave(ja.id);
        assert_eq!(b.lines(), ["* Alice left (1 here)"]);
        assert_eq!(room.rename(ja.id, "bob"), Err(NickError::Gone));
        // The nick is free again once its holder left.
        assert!(room.rename(jb.id, "alice").is_ok());
    }

    #[test]
    fn unicode_nicks_are_unique_without_case_and_look_alikes() {
        let room = room();
        let a = Client::new(1, 16);
        let b = Client::new(2, 16);
        let ja = room.join(a.handle.clone());
        let jb = room.join(b.handle.clone());
        assert!(room.rename(ja.id, "Émile").is_ok());
        // Unicode lowercase: É and é are one letter in two cases.
        assert_eq!(
            room.rename(jb.id, "émile"),
            Err(NickError::Taken("Émile".into()))
        );
        assert!(room.rename(jb.id, "emile").is_ok());
        // All-Cyrillic "асе" looks like Latin "ace".
        assert!(room.rename(ja.id, "ace").is_ok());
        assert_eq!(
            room.rename(jb.id, "асе"),
            Err(NickError::Taken("ace".into()))
        );
        assert!(room.rename(jb.id, "Вера").is_ok());
        assert_eq!(room.who(), ["ace", "Вера"]);
    }

    #[test]
    fn control_bytes_and_bad_utf8_never_reach_other_terminals() {
        assert_eq!(printable(b"a\x1b[2Jb\x07c\td"), "a?[2Jb?c\td");
        assert_eq!(printable(b"x\xffy"), "x\u{fffd}y");
        assert_eq!(printable("zoë".as_bytes()), "zoë");
    }

    /// Says numbered lines from `id` until the room answers `Wait`;
    /// returns how many were said.
    fn say_until_wait(room: &Room, id: MemberId, drain: &Client) -> usize {
        for k in 0..100 {
            let pace = room.say(id, format!("{k}").as_bytes()).unwrap();
            drain.lines();
            if pace == Pace::Wait {
                return k + 1;
            }
        }
        panic!("never paused");
    }

    #[test]
    fn a_member_behind_pauses_the_sender_until_its_queue_drains_below_low_water() {
        let room = room();
        let fast = Client::new(1, 16);
        let slow = Client::new(2, 16);
        let jf = room.join(fast.handle.clone());
        let js = room.join(slow.handle.clone());
        fast.lines();
        // High water is 8 of 16: the 8th line queued for the slow member
        // pauses the sender; a drain probe goes in behind it.
        assert_eq!(say_until_wait(&room, jf.id, &fast), 8);
        assert!(room.is_waiting(jf.id));
        let owed = slow.lines();
        assert_eq!(owed.len(), 9);
        assert_eq!(owed[7], "<127.0.0.1:1> 7");
        assert_eq!(owed[8], "CALL", "the drain probe, last");
        // The owner reached the probe with nothing left queued: the
        // sender is resumed, through its inbox.
        room.drained(js.id);
        assert!(!room.is_waiting(jf.id));
        assert_eq!(fast.lines(), ["RESUME"]);
        assert_eq!(room.len(), 2, "nobody was dropped");
    }

    #[test]
    fn a_probe_that_finds_the_queue_still_above_low_water_goes_again() {
        let room = room();
        let fast = Client::new(1, 16);
        let slow = Client::new(2, 16);
        let jf = room.join(fast.handle.clone());
        let js = room.join(slow.handle.clone());
        fast.lines();
        say_until_wait(&room, jf.id, &fast);
        // Lines keep coming from elsewhere (a notice), and the owner ran
        // the probe with 4 (low water) still queued.
        for _ in 0..9 {
            let _ = slow.inbox.try_recv();
        }
        for k in 0..4 {
            slow.handle.write(format!("x{k}\r\n")).unwrap();
        }
        room.drained(js.id);
        assert!(room.is_waiting(jf.id));
        assert_eq!(slow.lines(), ["x0", "x1", "x2", "x3", "CALL"]);
        room.drained(js.id);
        assert_eq!(fast.lines(), ["RESUME"]);
    }

    #[test]
    fn a_member_that_takes_nothing_for_the_grace_is_dropped_and_its_waiters_resumed() {
        let room = room().with_drop_grace(Duration::from_secs(5));
        let fast = Client::new(1, 16);
        let stuck = Client::new(2, 16);
        let jf = room.join(fast.handle.clone());
        let js = room.join(stuck.handle.clone());
        fast.lines();
        say_until_wait(&room, jf.id, &fast);
        let now = Instant::now();
        // Before the grace is up: still waiting, check again later.
        let again = room.check_stalled(jf.id, now).expect("still waits");
        assert!(again <= Duration::from_secs(5));
        assert_eq!(room.len(), 2);
        assert_eq!(
            room.check_stalled(jf.id, now + Duration::from_secs(5)),
            None
        );
        assert_eq!(
            fast.lines(),
            [
                "RESUME",
                "* 127.0.0.1:2 was dropped: too slow to keep up (1 here)"
            ]
        );
        let owed = stuck.lines();
        assert_eq!(owed.len(), 10, "{owed:?}");
        assert_eq!(owed[8..], ["CALL", "CALL"], "probe, then farewell");
        assert_eq!(room.say(js.id, b"late"), Err(Gone));
        room.leave(js.id);
        assert!(fast.lines().is_empty(), "a dropped member leaves once");
    }

    #[test]
    fn a_member_that_keeps_taking_is_never_dropped() {
        let room = room().with_drop_grace(Duration::from_millis(1));
        let fast = Client::new(1, 16);
        let slow = Client::new(2, 16);
        let jf = room.join(fast.handle.clone());
        room.join(slow.handle.clone());
        fast.lines();
        say_until_wait(&room, jf.id, &fast);
        let mut now = Instant::now();
        for _ in 0..3 {
            // One line taken per grace: progress, so no drop.
            let _ = slow.inbox.try_recv();
            now += Duration::from_secs(1);
            assert!(room.check_stalled(jf.id, now).is_some());
        }
        assert_eq!(room.len(), 2);
    }

    #[test]
    fn leaving_or_being_dropped_releases_who_waited_and_who_it_waited_on() {
        let room = room();
        let a = Client::new(1, 16);
        let slow = Client::new(2, 16);
        let ja = room.join(a.handle.clone());
        let js = room.join(slow.handle.clone());
        a.lines();
        say_until_wait(&room, ja.id, &a);
        room.leave(js.id);
        assert!(!room.is_waiting(ja.id));
        assert_eq!(a.lines(), ["RESUME", "* 127.0.0.1:2 left (1 here)"]);
    }

    #[test]
    fn more_senders_at_once_than_the_headroom_overflow_a_queue_and_drop_it() {
        // 8 slots: 5 for lines, high water at 4. Six members each say one
        // line before any of them pauses: the 6th finds no room.
        let room = room();
        let slow = Client::new(100, 8);
        let js = room.join(slow.handle.clone());
        let talkers: Vec<Client> = (0..6).map(|i| Client::new(1 + i, 64)).collect();
        let ids: Vec<MemberId> = talkers
            .iter()
            .map(|c| room.join(c.handle.clone()).id)
            .collect();
        // The joins' notices filled the queue already: drain them.
        slow.lines();
        for (k, id) in ids.iter().enumerate() {
            let _ = room.say(*id, format!("{k}").as_bytes());
        }
        assert!(
            room.lock().member(js.id).is_err(),
            "the overflowed member was dropped"
        );
        assert_eq!(room.len(), 6);
        for c in &talkers {
            let got = c.lines();
            assert!(got.iter().any(|l| l.contains("127.0.0.1:100 was dropped")));
        }
    }

    #[test]
    fn closed_connections_are_skipped_until_they_leave() {
        let room = room();
        let a = Client::new(1, 8);
        let ja = room.join(a.handle.clone());
        let b = Client::new(2, 8);
        let jb = room.join(b.handle.clone());
        drop(b);
        let _ = room.say(ja.id, b"still here").unwrap();
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
        let _ = room.say(jb.id, b"x").unwrap();
        assert_eq!(a.lines(), ["* 127.0.0.1:2 joined (2 here)"]);
        assert_eq!(room.len(), 1);
    }
}
