//! The bare thread chat of issue 15: the fan-out reference for
//! `spindle serve chat` on threads. Per connection:
//!
//! * a **reader** thread splits lines and `try_send`s each, formatted once,
//!   into every member's bounded crossbeam channel;
//! * a **writer** thread blocks on its own channel, drains everything
//!   queued with `try_recv` (up to [`WRITE_BATCH_BYTES`]) and writes it in
//!   one `write`.
//!
//! A member whose channel is full is dropped as a slow consumer, logged,
//! as Spindle's room does. On the wire it is `spindle serve chat` as far
//! as a fan-out load looks: the greeting `* welcome, ADDR: N here (you
//! included); ...` first, then every line said by anyone (the speaker
//! included) as `<ADDR> LINE\r\n`, in one order for everyone. No
//! commands, nicks, join notices or control-character filtering: those are
//! Spindle's, and cost nothing a fan-out measures.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/bare_chat [PORT] [QUEUE_LINES]
//! telnet 127.0.0.1 PORT
//! ```
//!
//! PORT 0 (the default) picks a free port, printed as `BareChat starting
//! on PORT` like Spindle's log line. QUEUE_LINES (default 1024, Spindle's
//! `--outbound-queue`) bounds each member's channel. Loopback only.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Spindle's `--outbound-queue` default: lines queued for one member.
pub const DEFAULT_QUEUE_LINES: usize = 1024;
/// Spindle's `--max-line-length` default (Twisted's `MAX_LENGTH`); a
/// longer line drops its sender.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// Bytes a writer gathers before one `write`.
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Bytes read at once (Spindle's `DEFAULT_READ_BUFFER`).
const READ_BUFFER: usize = 16 * 1024;
/// Spindle's thread-model stack (128 KiB): two threads per member.
const STACK_BYTES: usize = 128 * 1024;

/// How long accepting pauses after a failed accept.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// One line, formatted once and shared by every member's queue.
type Line = Arc<[u8]>;

/// A member: its queue and a handle on its socket to cut it off.
struct Member {
    id: usize,
    queue: Sender<Line>,
    socket: TcpStream,
}

/// Everyone in the room. The lock is held while one line is queued for
/// everyone, so all members see the lines in one order.
#[derive(Default)]
struct Room {
    members: Mutex<Vec<Member>>,
    next_id: AtomicUsize,
}

impl Room {
    /// Queues `line` for every member; drops those whose queue is full.
    fn say(&self, line: Line) {
        let Ok(mut members) = self.members.lock() else {
            return;
        };
        members.retain(|m| match m.queue.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                let queued = m.queue.len();
                eprintln!(
                    "BareChat: dropped slow consumer #{}: {queued} lines queued",
                    m.id
                );
                let _ = m.socket.shutdown(Shutdown::Both);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    fn leave(&self, id: usize) {
        if let Ok(mut members) = self.members.lock() {
            members.retain(|m| m.id != id);
        }
    }
}

/// Serves the room on every connection `listener` accepts; each member's
/// queue holds `queue_lines`. Runs until the process ends.
pub fn serve(listener: TcpListener, queue_lines: usize) -> io::Result<()> {
    let room = Arc::new(Room::default());
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("BareChat: accept failed: {e}");
                // Out of descriptors, say: a pause, not a busy loop.
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        if let Err(e) = join(&room, stream, queue_lines) {
            eprintln!("BareChat: could not take a connection: {e}");
        }
    }
    Ok(())
}

/// Greets `stream`, adds it to the room and starts its two threads.
fn join(room: &Arc<Room>, stream: TcpStream, queue_lines: usize) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let name = stream.peer_addr()?.to_string();
    let (queue, outbox) = crossbeam_channel::bounded::<Line>(queue_lines);
    let writer_socket = stream.try_clone()?;
    let id = room.next_id.fetch_add(1, Ordering::Relaxed);
    thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || write_queued(writer_socket, outbox))?;
    let member = Member {
        id,
        queue: queue.clone(),
        socket: stream.try_clone()?,
    };
    {
        let mut members = room
            .members
            .lock()
            .map_err(|_| io::Error::other("room lock poisoned"))?;
        let greeting = format!(
            "* welcome, {name}: {} here (you included); /help lists the commands\r\n",
            members.len() + 1
        );
        // First in the queue, before any line said after the join.
        let _ = queue.try_send(greeting.into_bytes().into());
        members.push(member);
    }
    drop(queue);
    let reader_room = room.clone();
    let reader_socket = stream.try_clone()?;
    let spawned = thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || read_lines(reader_socket, &name, id, &reader_room));
    if spawned.is_err() {
        // No reader: take it out again; its writer ends with its queue.
        room.leave(id);
        let _ = stream.shutdown(Shutdown::Both);
    }
    spawned.map(drop)
}

/// The reader: splits what `stream` sends into lines and says each one.
fn read_lines(mut stream: TcpStream, name: &str, id: usize, room: &Room) {
    let prefix = format!("<{name}> ");
    let mut buf = vec![0u8; READ_BUFFER];
    let mut partial = Vec::new();
    'reading: loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &buf[..n];
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            partial.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let text = partial.strip_suffix(b"\r").unwrap_or(&partial);
            let mut line = Vec::with_capacity(prefix.len() + text.len() + 2);
            line.extend_from_slice(prefix.as_bytes());
            line.extend_from_slice(text);
            line.extend_from_slice(b"\r\n");
            room.say(line.into());
            partial.clear();
        }
        partial.extend_from_slice(rest);
        if partial.len() > MAX_LINE_BYTES {
            eprintln!("BareChat: {name} sent a line over {MAX_LINE_BYTES} bytes; dropped");
            break 'reading;
        }
    }
    room.leave(id);
    let _ = stream.shutdown(Shutdown::Both);
}

/// The writer: blocks for one line, takes everything else queued, writes
/// it all at once. Ends when the member has left (its queue's sender is
/// gone and the queue drained) or the socket fails.
fn write_queued(mut stream: TcpStream, outbox: Receiver<Line>) {
    let mut out = Vec::with_capacity(WRITE_BATCH_BYTES);
    while let Ok(first) = outbox.recv() {
        out.extend_from_slice(&first);
        while out.len() < WRITE_BATCH_BYTES {
            match outbox.try_recv() {
                Ok(line) => out.extend_from_slice(&line),
                Err(_) => break,
            }
        }
        if stream.write_all(&out).is_err() {
            break;
        }
        out.clear();
    }
    let _ = stream.shutdown(Shutdown::Both);
}

#[path = "support/listen.rs"]
mod listen;

#[allow(dead_code)] // the tests include this file for `serve` alone
fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().map(|a| a.parse()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(e)) => exit(&format!("PORT: {e}")),
    };
    let queue_lines = match args.next().map(|a| a.parse::<usize>()) {
        None => DEFAULT_QUEUE_LINES,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => exit("QUEUE_LINES: a number above 0"),
    };
    let listener = listen::loopback(port).unwrap_or_else(|e| exit(&e.to_string()));
    let port = listener.local_addr().map_or(0, |a| a.port());
    eprintln!("BareChat starting on {port} ({queue_lines} lines queued per member at most)");
    if let Err(e) = serve(listener, queue_lines) {
        exit(&format!("cannot serve: {e}"));
    }
}

/// Prints why and exits 2, as a usage error.
#[allow(dead_code)]
fn exit(why: &str) -> ! {
    eprintln!("bare_chat: {why}\nusage: bare_chat [PORT] [QUEUE_LINES]");
    std::process::exit(2)
}
