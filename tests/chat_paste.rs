//! Issue 15's paste on every model, end to end: members paste thousands
//! of lines in one write into a room of readers. The room paces the
//! pasters by the slowest reader (flow control) instead of evicting
//! anyone: every reader gets every line exactly once, in the room's one
//! order, and nobody is disconnected. Beside it: a member that stops
//! reading is still dropped within `--drop-grace` while a paste goes on,
//! a paused paster that disconnects or says `/quit` leaves cleanly.
//!
//! The process model refuses the chat (each connection would be alone in
//! a room of its own), so it is not here.

mod chat_support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;

use chat_support::{Client, PATIENCE, Server, join};

/// Lines in each paste: several times every queue (`--outbound-queue`
/// 64 here) and many reads' worth.
const PASTE_LINES: usize = 5_000;

/// Readers in the room besides the pasters.
const READERS: usize = 10;

fn serve(model: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--model", model, "--outbound-queue", "64"];
    args.extend_from_slice(extra);
    Server::start("chat", &args)
}

/// `n` lines of paste `tag`, in one buffer.
fn paste(tag: &str, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|k| format!("{tag} {k}\r\n").into_bytes())
        .collect()
}

/// Reads until it has `want` lines said by members (`<...> ...`); fails
/// the test on a disconnect notice for itself or EOF. Returns them.
fn said_lines(c: &mut Client, want: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        let line = c
            .line_within(PATIENCE)
            .unwrap_or_else(|| panic!("only {} of {want} lines came", got.len()));
        assert!(
            !line.starts_with("* you are being disconnected"),
            "disconnected after {} lines: {line}",
            got.len()
        );
        if line.starts_with('<') {
            got.push(line);
        }
    }
    got
}

/// The lines of `tag` in `lines`, by number; checks they are 0..n in
/// order.
fn assert_whole_paste(lines: &[String], name: &str, tag: &str, n: usize) {
    let prefix = format!("<{name}> {tag} ");
    let ks: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|k| k.parse().expect("a number"))
        .collect();
    assert_eq!(ks.len(), n, "{tag}: {} of {n} lines", ks.len());
    assert!(
        ks.iter().enumerate().all(|(i, k)| i == *k),
        "{tag} out of order"
    );
}

/// Every model but process: two members paste at once into a room of
/// readers that keep reading.
fn two_pastes_reach_every_reader_whole_in_one_order(model: &str) {
    let server = serve(model, &[]);
    let mut readers: Vec<Client> = (0..READERS).map(|_| join(&server).0).collect();
    let (mut a, _) = join(&server);
    let (mut b, _) = join(&server);
    let (a_name, b_name) = (a.name(), b.name());
    let pastes = [paste("a", PASTE_LINES), paste("b", PASTE_LINES)];
    // Each paster writes its paste in one write_all (which blocks while
    // the room holds it back) on its own thread, and reads its echoes.
    let senders: Vec<_> = [&mut a, &mut b]
        .into_iter()
        .zip(pastes)
        .map(|(c, bytes)| {
            let mut w = c.stream.try_clone().unwrap();
            thread::spawn(move || w.write_all(&bytes).expect("the paste is taken"))
        })
        .collect();
    let want = 2 * PASTE_LINES;
    let readers_done: Vec<_> = readers
        .drain(..)
        .chain([a, b])
        .map(|mut c| thread::spawn(move || said_lines(&mut c, want)))
        .collect();
    let heard: Vec<Vec<String>> = readers_done
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    for (i, lines) in heard.iter().enumerate() {
        assert_eq!(lines, &heard[0], "member {i} heard another order");
        assert_whole_paste(lines, &a_name, "a", PASTE_LINES);
        assert_whole_paste(lines, &b_name, "b", PASTE_LINES);
    }
    assert_eq!(
        server.log.count("dropped slow consumer"),
        0,
        "{}",
        server.log.text()
    );
}

mod a_paste_reaches_every_reader_whole_and_nobody_is_disconnected {
    #[test]
    fn pool() {
        super::two_pastes_reach_every_reader_whole_in_one_order("pool");
    }
    #[test]
    fn thread() {
        super::two_pastes_reach_every_reader_whole_in_one_order("thread");
    }
    #[test]
    fn reactor() {
        super::two_pastes_reach_every_reader_whole_in_one_order("reactor");
    }
    #[test]
    fn hybrid() {
        super::two_pastes_reach_every_reader_whole_in_one_order("hybrid");
    }
}

/// A client whose receive buffer is tiny, so the server's writes to it
/// block soon after it stops reading.
fn stubborn_client(port: u16) -> Client {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    Client::new(TcpStream::from(socket))
}

/// A member that never reads holds the paste back for `--drop-grace`,
/// is dropped, and the paste goes on to everyone else, whole.
fn a_stuck_member_is_dropped_and_the_paste_goes_on(model: &str) {
    let server = serve(model, &["--drop-grace", "300ms", "--write-timeout", "600s"]);
    let mut stuck = stubborn_client(server.port);
    let stuck_name = stuck.name();
    assert!(stuck.line().starts_with("* welcome"));
    let readers: Vec<Client> = (0..3).map(|_| join(&server).0).collect();
    let (a, _) = join(&server);
    let a_name = a.name();
    let mut w = a.stream.try_clone().unwrap();
    // Long lines, so the stuck member's socket buffers fill quickly.
    let filler = "z".repeat(2000);
    let bytes: Vec<u8> = (0..2000)
        .flat_map(|k| format!("a {k} {filler}\r\n").into_bytes())
        .collect();
    let sender = thread::spawn(move || w.write_all(&bytes).unwrap());
    let done: Vec<_> = readers
        .into_iter()
        .chain([a])
        .map(|mut c| {
            thread::spawn(move || {
                said_lines(&mut c, 2000)
                    .into_iter()
                    .map(|l| l.replace(&format!(" {}", "z".repeat(2000)), ""))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in done {
        assert_whole_paste(&t.join().unwrap(), &a_name, "a", 2000);
    }
    sender.join().unwrap();
    let logged = server
        .log
        .wait_for("dropped slow consumer", PATIENCE)
        .expect("the stuck member was dropped");
    assert!(logged.contains(&stuck_name), "{logged}");
    assert!(logged.contains("none taken for 300ms"), "{logged}");
    assert_eq!(server.log.count("dropped slow consumer"), 1);
    assert!(stuck.closed_within(PATIENCE));
}

/// A paster that goes away while the room holds it back: the readers get
/// what it said, in order, then its leaving; nobody else is touched.
fn a_paused_paster_that_disconnects_leaves_cleanly(model: &str) {
    let server = serve(model, &[]);
    let mut reader = join(&server).0;
    let (mut a, _) = join(&server);
    let a_name = a.name();
    reader.line(); // a joined
    let mut w = a.stream.try_clone().unwrap();
    // Far more than the room and the kernel buffers hold: the write is
    // still blocked when the paster gives up.
    let sender = thread::spawn(move || {
        let _ = w.write_all(&paste("a", 200_000));
    });
    // Once the paste is flowing, the paster goes.
    said_lines(&mut a, 100);
    a.stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(a);
    let mut numbers = Vec::new();
    let left = format!("* {a_name} left (1 here)");
    loop {
        let line = reader.line();
        if line == left {
            break;
        }
        let k: usize = line
            .strip_prefix(&format!("<{a_name}> a "))
            .unwrap_or_else(|| panic!("unexpected {line:?}"))
            .parse()
            .unwrap();
        numbers.push(k);
    }
    assert!(numbers.len() >= 100);
    assert!(
        numbers.iter().enumerate().all(|(i, k)| i == *k),
        "out of order"
    );
    sender.join().unwrap();
    assert_eq!(server.log.count("dropped slow consumer"), 0);
    // The reader is still served.
    let (mut c, _) = join(&server);
    c.send(b"still here\r\n");
    assert_eq!(reader.line(), format!("* {} joined (2 here)", c.name()));
    assert_eq!(reader.line(), format!("<{}> still here", c.name()));
}

/// A paster held back by a member that reads nothing, resetting its
/// connection while it is paused: its owner reads nothing then, yet must
/// still find the reset (Twisted: a paused transport still gets
/// `connectionLost`). The readers see it leave long before
/// `--drop-grace` would have dropped the stuck member and resumed it.
fn a_paused_paster_that_resets_leaves_at_once(model: &str) {
    let server = serve(model, &["--drop-grace", "600s", "--write-timeout", "600s"]);
    let mut stuck = stubborn_client(server.port);
    assert!(stuck.line().starts_with("* welcome"));
    let mut reader = join(&server).0;
    let (a, _) = join(&server);
    let a_name = a.name();
    reader.line(); // a joined
    let mut w = a.stream.try_clone().unwrap();
    // Long lines, so the stuck member's buffers fill after a few hundred.
    let filler = "z".repeat(500);
    let bytes: Vec<u8> = (0..100_000)
        .flat_map(|k| format!("a {k} {filler}\r\n").into_bytes())
        .collect();
    let sender = thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    // The paste flows until the stuck member is full, then the room
    // pauses the paster: no line comes for a while (bounded: the stuck
    // member holds at most its queue and its socket buffers).
    let prefix = format!("<{a_name}> a ");
    let mut heard = 0;
    while let Some(line) = reader.line_within(std::time::Duration::from_millis(500)) {
        assert!(line.starts_with(&prefix), "unexpected {line:?}");
        heard += 1;
        assert!(heard < 100_000, "the paste was never held back");
    }
    assert!(heard > 0, "the paste never started");
    // The paster resets while paused: its FIN first (which ends its
    // blocked write), then, closed with SO_LINGER 0, its RST.
    socket2::SockRef::from(&a.stream)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    a.stream.shutdown(std::net::Shutdown::Write).unwrap();
    sender.join().unwrap();
    drop(a);
    // What it said before it went may still be on its way; then it left.
    let left = format!("* {a_name} left (2 here)");
    loop {
        let line = reader
            .line_within(PATIENCE)
            .unwrap_or_else(|| panic!("the reset paster never left: {}", server.log.text()));
        if line == left {
            break;
        }
        assert!(line.starts_with(&prefix), "unexpected {line:?}");
    }
    assert_eq!(server.log.count("dropped slow consumer"), 0);
    // The others are still served.
    let (mut c, _) = join(&server);
    c.send(b"still here\r\n");
    assert_eq!(reader.line(), format!("* {} joined (3 here)", c.name()));
    assert_eq!(reader.line(), format!("<{}> still here", c.name()));
}

/// `/quit` at the end of a paste is read in its place, after the lines
/// before it went round: the paster gets its echoes, then `* bye`.
fn quit_after_a_paste_comes_in_its_place(model: &str) {
    let server = serve(model, &[]);
    let mut reader = join(&server).0;
    let (mut a, _) = join(&server);
    let a_name = a.name();
    reader.line();
    let mut bytes = paste("a", PASTE_LINES);
    bytes.extend_from_slice(b"/quit\r\nnever said\r\n");
    let mut w = a.stream.try_clone().unwrap();
    let sender = thread::spawn(move || w.write_all(&bytes).unwrap());
    let heard = said_lines(&mut reader, PASTE_LINES);
    assert_whole_paste(&heard, &a_name, "a", PASTE_LINES);
    assert_eq!(reader.line(), format!("* {a_name} left (1 here)"));
    // `* bye` is written at once, so it may overtake the paster's last
    // echoes still queued, which a closing connection no longer sends:
    // what it got of its own lines is a prefix, in order.
    let echoed = a.until("* bye");
    let own: Vec<String> = echoed.into_iter().filter(|l| l.starts_with('<')).collect();
    let prefix = format!("<{a_name}> a ");
    assert!(
        own.iter()
            .enumerate()
            .all(|(i, l)| l.strip_prefix(&prefix) == Some(i.to_string().as_str())),
        "the paster's own echoes out of order"
    );
    assert!(a.closed_within(PATIENCE));
    sender.join().unwrap();
}

mod a_stuck_member_is_dropped_while_a_paste_goes_on {
    #[test]
    fn pool() {
        super::a_stuck_member_is_dropped_and_the_paste_goes_on("pool");
    }
    #[test]
    fn thread() {
        super::a_stuck_member_is_dropped_and_the_paste_goes_on("thread");
    }
    #[test]
    fn reactor() {
        super::a_stuck_member_is_dropped_and_the_paste_goes_on("reactor");
    }
    #[test]
    fn hybrid() {
        super::a_stuck_member_is_dropped_and_the_paste_goes_on("hybrid");
    }
}

mod a_paused_paster_that_disconnects {
    #[test]
    fn pool() {
        super::a_paused_paster_that_disconnects_leaves_cleanly("pool");
    }
    #[test]
    fn thread() {
        super::a_paused_paster_that_disconnects_leaves_cleanly("thread");
    }
    #[test]
    fn hybrid() {
        super::a_paused_paster_that_disconnects_leaves_cleanly("hybrid");
    }
    #[test]
    fn reactor() {
        super::a_paused_paster_that_disconnects_leaves_cleanly("reactor");
    }
}

mod a_paused_paster_that_resets {
    #[test]
    fn pool() {
        super::a_paused_paster_that_resets_leaves_at_once("pool");
    }
    #[test]
    fn thread() {
        super::a_paused_paster_that_resets_leaves_at_once("thread");
    }
    #[test]
    fn hybrid() {
        super::a_paused_paster_that_resets_leaves_at_once("hybrid");
    }
    #[test]
    fn reactor() {
        super::a_paused_paster_that_resets_leaves_at_once("reactor");
    }
}

mod quit_while_paused {
    #[test]
    fn pool() {
        super::quit_after_a_paste_comes_in_its_place("pool");
    }
    #[test]
    fn thread() {
        super::quit_after_a_paste_comes_in_its_place("thread");
    }
    #[test]
    fn reactor() {
        super::quit_after_a_paste_comes_in_its_place("reactor");
    }
    #[test]
    fn hybrid() {
        super::quit_after_a_paste_comes_in_its_place("hybrid");
    }
}
