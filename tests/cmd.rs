//! The command server end to end: the real `spindle serve cmd`, driven
//! over loopback by raw TCP clients and netcat, as a user would.

mod chat_support;
mod util;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use util::{DEADLINE, Spindle, connect, sh, wait_until};

/// A scratch directory, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("spindle-cmd-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        Scratch(std::fs::canonicalize(&dir).unwrap())
    }
    fn root(&self) -> PathBuf {
        self.0.join("root")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve(scratch: &Scratch, extra: &[&str]) -> (Spindle, u16) {
    let root = scratch.root();
    let log = scratch.0.join("server.log");
    let mut args = vec![
        "serve",
        "cmd",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--root",
        root.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let s = Spindle::start(&args);
    let port = s.port_of("CmdFactory");
    (s, port)
}

/// A line client with a buffered reader.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(port: u16) -> Client {
        let stream = connect(port);
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }
    fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
    }
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("an answer line");
        line
    }
    fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }
    /// Whether the server closed: EOF with nothing more.
    fn at_eof(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

fn write_log(scratch: &Scratch) {
    let mut text = String::new();
    for i in 1..=14 {
        text.push_str(&format!("log line {i}\n"));
        if i == 8 {
            text.push_str("==> header <==\n");
        }
    }
    std::fs::write(scratch.0.join("server.log"), text).unwrap();
}

#[test]
fn every_command_and_message() {
    let scratch = Scratch::new("all");
    write_log(&scratch);
    std::fs::write(scratch.root().join("hello.txt"), "hello\n").unwrap();
    let (s, port) = serve(&scratch, &[]);
    let mut c = Client::new(port);

    c.send("help\n");
    let help: Vec<String> = (0..4).map(|_| c.line()).collect();
    assert_eq!(
        help,
        [
            "lastlog: show the last 10 lines of the server's log file\n",
            "comhash PATH: show the SHA-1 of a regular file under the server's root\n",
            "help: show this list\n",
            "exit: close the connection\n",
        ]
    );
    assert_eq!(c.ask("frobnicate\n"), "Command not found.\n");
    assert_eq!(c.ask("\n"), "Command not found.\n");
    assert_eq!(c.ask("comhash\n"), "please provide a path.\n");
    assert_eq!(c.ask("comhash   \r\n"), "please provide a path.\n");
    let expected = sh(&format!(
        "cd {} && sha1sum hello.txt",
        scratch.root().display()
    ));
    let expected = expected.split_whitespace().next().unwrap();
    assert_eq!(
        c.ask("comhash hello.txt\n"),
        format!("File hash is : {expected}\n")
    );
    // A telnet-style CRLF line works the same.
    assert_eq!(
        c.ask("comhash hello.txt\r\n"),
        format!("File hash is : {expected}\n")
    );
    assert_eq!(
        c.ask("comhash missing.txt\n"),
        "An error occured: missing.txt: No such file or directory\n"
    );

    c.send("lastlog\n");
    let mut answer = vec![c.line()];
    while answer.last().is_some_and(|l| l != "End lastlog\n") && answer.len() < 20 {
        answer.push(c.line());
    }
    let mut expected: Vec<String> = vec!["Begin lastlog\n".into()];
    expected.extend((6..=14).map(|i| format!("log line {i}\n")));
    expected.push("End lastlog\n".into());
    assert_eq!(answer, expected, "the `==` line is dropped");

    std::fs::remove_file(scratch.0.join("server.log")).unwrap();
    let failed = c.ask("lastlog\n");
    assert!(
        failed.starts_with("An error occured: tail exited with status 1: tail: cannot open")
            && failed.ends_with("No such file or directory\n"),
        "{failed}"
    );

    c.send("exit\n");
    assert!(c.at_eof());

    assert!(s.wait_for_log("Lost client connection. Reason: Connection was closed cleanly."));
    let log = s.log();
    for needle in [
        "[CmdProtocol,0,127.0.0.1] Client connection from 127.0.0.1",
        "[CmdProtocol,0,127.0.0.1] Cmd received from 127.0.0.1 : lastlog",
        "Cmd received from 127.0.0.1 : comhash hello.txt",
        "Cmd received from 127.0.0.1 : frobnicate",
        "Cmd received from 127.0.0.1 : exit",
    ] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }
}

#[test]
fn netcat_sessions() {
    let scratch = Scratch::new("nc");
    let (_s, port) = serve(&scratch, &[]);
    let out = sh(&format!(
        "printf 'help\\nwhat\\nexit\\nhelp\\n' | nc -N 127.0.0.1 {port}"
    ));
    assert_eq!(
        out,
        "lastlog: show the last 10 lines of the server's log file\n\
         comhash PATH: show the SHA-1 of a regular file under the server's root\n\
         help: show this list\n\
         exit: close the connection\n\
         Command not found.\n"
    );
}

#[test]
fn max_clients_refuses_the_next_one_with_a_line() {
    let scratch = Scratch::new("max");
    let (s, port) = serve(&scratch, &["--max-clients", "2"]);
    let mut a = Client::new(port);
    let mut b = Client::new(port);
    assert_eq!(a.ask("x\n"), "Command not found.\n");
    assert_eq!(b.ask("x\n"), "Command not found.\n");
    let mut c = Client::new(port);
    assert_eq!(c.line(), "Too many connections, bye!\n");
    assert!(c.at_eof());
    assert!(s.wait_for_log("Too many connections, bye!"));
    // Still served, the two first.
    assert_eq!(a.ask("x\n"), "Command not found.\n");
    drop(b);
    // The slot frees when the server has seen the close: poll.
    assert!(wait_until(DEADLINE, || {
        let mut d = Client::new(port);
        d.send("x\n");
        d.line() == "Command not found.\n"
    }));
}

#[test]
fn comhash_refuses_every_path_outside_or_not_regular_and_reads_none() {
    let scratch = Scratch::new("refuse");
    let root = scratch.root();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(scratch.0.join("secret.txt"), "outside").unwrap();
    symlink(scratch.0.join("secret.txt"), root.join("escape")).unwrap();
    symlink("/dev/zero", root.join("zero")).unwrap();
    let fifo = root.join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let (_s, port) = serve(&scratch, &[]);
    let mut c = Client::new(port);
    let outside = |p: &str| format!("An error occured: {p}: outside the server's root directory\n");
    for path in [
        "/dev/zero",
        "../../etc/shadow",
        "/etc/shadow",
        "../secret.txt",
        "escape",
        "zero",
    ] {
        assert_eq!(c.ask(&format!("comhash {path}\n")), outside(path), "{path}");
    }
    assert_eq!(
        c.ask("comhash fifo\n"),
        "An error occured: fifo: not a regular file (a FIFO)\n"
    );
    assert_eq!(
        c.ask("comhash dir\n"),
        "An error occured: dir: not a regular file (a directory)\n"
    );
    // The FIFO was never opened: with no reader, a non-blocking writer
    // cannot open it.
    let w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(&fifo);
    assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::ENXIO));
    // And the connection is fine afterwards.
    assert_eq!(c.ask("x\n"), "Command not found.\n");
}

/// `OpenOptions` with `O_NONBLOCK`.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// How long a client waits for a big file's hash: ~1 s on an idle machine,
/// far more when the machine is loaded.
const SLOW_HASH: Duration = Duration::from_secs(120);

/// SHA-1 of 512 MiB of zero bytes (`truncate -s 512M f; sha1sum f`).
const ZEROS_512M_SHA1: &str = "5b088492c9f4778f409b7ae61477dec124c99033";

fn big_sparse_file(dir: &Path) {
    let f = std::fs::File::create(dir.join("big")).unwrap();
    f.set_len(512 << 20).unwrap(); // sparse: instant, no disk used
}

#[test]
fn a_big_hash_does_not_stall_other_clients() {
    let scratch = Scratch::new("big");
    big_sparse_file(&scratch.root());
    let (s, port) = serve(&scratch, &[]);
    let mut hasher = Client::new(port);
    hasher.send("comhash big\n");
    assert!(s.wait_for_log("Cmd received from 127.0.0.1 : comhash big"));
    let mut other = Client::new(port);
    // Answered within the bound (the read timeout), before the hash.
    other.stream.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(other.ask("hello\n"), "Command not found.\n");
    // The same client too: its own later command is answered first.
    assert_eq!(
        hasher.ask("help\n"),
        "lastlog: show the last 10 lines of the server's log file\n"
    );
    for _ in 0..3 {
        hasher.line();
    }
    // ...while the hash is still running.
    hasher.stream.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let pending = hasher.stream.read(&mut b);
    assert!(
        matches!(&pending, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the hash answered before the other client: {pending:?}"
    );
    hasher.stream.set_nonblocking(false).unwrap();
    // Hashing takes ~1 s here, but much longer on a loaded machine.
    hasher.stream.set_read_timeout(Some(SLOW_HASH)).unwrap();
    assert_eq!(hasher.line(), format!("File hash is : {ZEROS_512M_SHA1}\n"));
}

#[test]
fn a_saturated_pool_answers_server_busy() {
    let scratch = Scratch::new("busy");
    big_sparse_file(&scratch.root());
    std::fs::write(scratch.root().join("small"), "x").unwrap();
    let (_s, port) = serve(
        &scratch,
        &["--blocking-threads", "1", "--blocking-queue", "0"],
    );
    let mut hasher = Client::new(port);
    hasher.stream.set_read_timeout(Some(SLOW_HASH)).unwrap();
    let mut other = Client::new(port);
    // With no queue, a job is taken only by an idle thread: if the big
    // hash was refused (or `small` got the thread first), read the
    // hasher's answer and try again.
    let mut busy = String::new();
    let held = wait_until(DEADLINE, || {
        hasher.send("comhash big\n");
        busy = other.ask("comhash small\n");
        if busy == "An error occured: server busy\n" {
            return true;
        }
        hasher.line();
        false
    });
    assert!(held, "never saw server busy; last answer {busy:?}");
    assert_eq!(hasher.line(), format!("File hash is : {ZEROS_512M_SHA1}\n"));
}

#[test]
fn serve_all_includes_the_command_server() {
    use std::net::TcpListener;
    let offset = (20_000..40_000u16)
        .step_by(89)
        .find(|o| {
            ["1234", "8007", "1235", "9999"]
                .iter()
                .all(|p| TcpListener::bind(("0.0.0.0", p.parse::<u16>().unwrap() + o)).is_ok())
        })
        .expect("a free port range");
    let s = Spindle::start(&["serve", "all", "--port-offset", &offset.to_string()]);
    assert_eq!(s.port_of("CmdFactory"), 9999 + offset);
    let mut c = Client::new(9999 + offset);
    assert_eq!(c.ask("nothing\n"), "Command not found.\n");
}

#[test]
fn a_tail_that_hangs_is_killed_after_the_lastlog_timeout() {
    let scratch = Scratch::new("hang");
    // `tail` blocks opening a FIFO nobody writes to.
    let fifo = std::ffi::CString::new(scratch.0.join("server.log").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (s, port) = serve(&scratch, &["--lastlog-timeout", "300ms"]);
    let mut c = Client::new(port);
    c.send("lastlog\n");
    // Meanwhile the connection answers.
    assert_eq!(c.ask("x\n"), "Command not found.\n");
    assert_eq!(c.line(), "An error occured: tail killed by signal 9\n");
    assert!(s.wait_for_log("still running after 300ms: killing it"));
}

#[test]
fn bad_blocking_options_are_usage_errors() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args([
            "serve",
            "cmd",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--blocking-threads",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--blocking-threads must be at least 1"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args([
            "serve",
            "cmd",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--root",
            "/nonexistent/dir",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--root /nonexistent/dir"));
}

/// Children of `pid` named `name`, from /proc.
fn children_named(pid: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = &stat[stat.find('(').map_or(0, |i| i + 1)..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if comm == name && ppid == Some(&pid.to_string()) {
            found.push(child);
        }
    }
    found
}

#[test]
fn a_client_that_leaves_during_lastlog_leaves_no_child_behind() {
    let scratch = Scratch::new("leave");
    let fifo = std::ffi::CString::new(scratch.0.join("server.log").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (s, port) = serve(&scratch, &["--lastlog-timeout", "60s"]);
    let server_pid = s.child.id();
    let mut c = Client::new(port);
    c.send("lastlog\n");
    let mut tails = Vec::new();
    assert!(wait_until(DEADLINE, || {
        tails = children_named(server_pid, "tail");
        !tails.is_empty()
    }));
    drop(c);
    // Killed *and* reaped: a zombie would still be listed in /proc.
    assert!(
        wait_until(DEADLINE, || tails
            .iter()
            .all(|t| !Path::new(&format!("/proc/{t}")).exists())),
        "tail {tails:?} outlived its client"
    );
    assert!(s.wait_for_log("Lost client connection."));
}

#[test]
fn a_client_that_leaves_mid_hash_frees_the_pool_thread() {
    let scratch = Scratch::new("abandon");
    // 64 GiB, sparse: hashing it all would take a minute or more; the test
    // passes only if the job stops when its client leaves.
    let f = std::fs::File::create(scratch.root().join("huge")).unwrap();
    f.set_len(64 << 30).unwrap();
    std::fs::write(scratch.root().join("small"), "abc").unwrap();
    let (s, port) = serve(
        &scratch,
        &["--blocking-threads", "1", "--blocking-queue", "0"],
    );
    let mut hasher = Client::new(port);
    let mut other = Client::new(port);
    // Retry until the huge hash holds the one thread. Ask `small` only once
    // the server has taken `huge` (its own log says so), so that `small`
    // cannot slip in first; then a `small` answered means `huge` was
    // refused (the thread was not idle yet), and the hasher was told so.
    let mut tries = 0;
    assert!(wait_until(DEADLINE, || {
        hasher.send("comhash huge\n");
        tries += 1;
        let taken = wait_until(DEADLINE, || {
            s.log()
                .matches("Cmd received from 127.0.0.1 : comhash huge")
                .count()
                == tries
        });
        assert!(taken, "{}", s.log());
        if other.ask("comhash small\n") == "An error occured: server busy\n" {
            return true;
        }
        assert_eq!(hasher.line(), "An error occured: server busy\n");
        false
    }));
    drop(hasher);
    assert!(s.wait_for_log("Lost client connection."));
    let mut answer = String::new();
    assert!(
        wait_until(DEADLINE, || {
            answer = other.ask("comhash small\n");
            answer.starts_with("File hash is")
        }),
        "the pool thread was not freed: {answer}"
    );
    assert_eq!(
        answer,
        "File hash is : a9993e364706816aba3e25717850c26c9cd0d89d\n"
    );
}

#[test]
fn an_overlong_command_line_drops_the_connection() {
    let scratch = Scratch::new("long");
    let (s, port) = serve(&scratch, &["--max-line-length", "20"]);
    let mut c = Client::new(port);
    assert_eq!(
        c.ask(&format!("{}\n", "y".repeat(20))),
        "Command not found.\n"
    );
    c.send(&format!("{}\n", "z".repeat(21)));
    assert!(c.at_eof());
    assert!(s.wait_for_log("line too long"));
}

#[test]
fn comhash_inline_answers_before_the_next_command_on_every_thread_model() {
    // Inline, the hash is done inside the command's callback, so its answer
    // always comes before the answer to the command after it (through the
    // pool it may come after: see a_big_hash_does_not_stall_other_clients).
    for model in ["pool", "thread", "reactor", "hybrid"] {
        let scratch = Scratch::new(&format!("inline-{model}"));
        std::fs::write(scratch.root().join("hello.txt"), "hello\n").unwrap();
        let (_s, port) = serve(&scratch, &["--model", model, "--comhash-inline"]);
        let mut c = Client::new(port);
        c.send("comhash hello.txt\nhelp\ncomhash nope.txt\n");
        assert_eq!(
            c.line(),
            "File hash is : f572d396fae9206628714fb2ce00f72e94f2258f\n",
            "{model}"
        );
        assert_eq!(
            c.line(),
            "lastlog: show the last 10 lines of the server's log file\n"
        );
        for _ in 0..3 {
            c.line();
        }
        assert!(
            c.line().starts_with("An error occured: nope.txt"),
            "{model}"
        );
    }
}

/// UTF-8 typed in the real telnet (under a pty) reaches the command server
/// intact: `comhash` finds a file whose name has `у` (0x83, IAC IP to a
/// non-binary telnet) and `本` (0x9C, IAC BRK), before and after the
/// client turned binary; `exit` closes.
#[test]
fn utf8_typed_in_telnet_names_a_file_intact() {
    let scratch = Scratch::new("utf8");
    let name = format!("{}.txt", chat_support::UTF8_LINE);
    std::fs::write(scratch.root().join(&name), b"abc").unwrap();
    let (_server, port) = serve(&scratch, &[]);
    // SHA-1 of "abc"; the pty shows the `\n` as `\r\n`.
    let hash = "expect=File hash is : a9993e364706816aba3e25717850c26c9cd0d89d\r?\n".to_string();
    let steps = [
        format!("type=comhash {name}"),
        hash.clone(),
        format!("type=comhash {name}"),
        hash,
        "type=exit".to_string(),
    ];
    chat_support::telnet_script(port, &steps);
}

/// Under `--model process` every connection is the only client of its own
/// process, so `--max-clients 1` limits nothing: the log says so (and
/// points at --max-connections), and a second client is indeed served.
#[test]
fn max_clients_under_the_process_model_is_warned_about() {
    let scratch = Scratch::new("process-max-clients");
    write_log(&scratch);
    let (s, port) = serve(&scratch, &["--model", "process", "--max-clients", "1"]);
    assert!(
        s.wait_for_log("CmdFactory shares state between connections"),
        "{}",
        s.log()
    );
    let log = s.log();
    assert!(
        log.contains("--max-clients limits nothing under --model process")
            && log.contains("--max-connections"),
        "{log}"
    );
    let mut first = Client::new(port);
    assert_eq!(first.ask("nothing\n"), "Command not found.\n");
    let mut second = Client::new(port);
    assert_eq!(second.ask("nothing\n"), "Command not found.\n");
}

/// Commands piped in, as a script would: `exit` waits for the answers
/// already due, so every one of them is printed (Twisted's `exit` would
/// close before lastlog's and comhash's answers came).
#[test]
fn piped_commands_get_every_answer_before_exit_closes() {
    let scratch = Scratch::new("piped");
    write_log(&scratch);
    std::fs::write(scratch.root().join("README.md"), b"abc").unwrap();
    let (_s, port) = serve(&scratch, &[]);
    // Plain nc: it keeps the connection open after its input ends. (`nc
    // -N` half-closes it, which the engines take as the end of the
    // connection, as Twisted does: answers not yet written are lost.)
    let nc = "nc";
    let out = sh(&format!(
        "printf 'lastlog\\ncomhash README.md\\nexit\\nhelp\\n' | {nc} 127.0.0.1 {port}"
    ));
    let mut expected_lastlog = String::from("Begin lastlog\n");
    // The last ten lines of the file, less the `==>` header among them.
    for i in 6..=14 {
        expected_lastlog.push_str(&format!("log line {i}\n"));
    }
    expected_lastlog.push_str("End lastlog\n");
    let hash = "File hash is : a9993e364706816aba3e25717850c26c9cd0d89d\n";
    // The two answers come in whichever order their work ends.
    assert!(
        out == format!("{expected_lastlog}{hash}") || out == format!("{hash}{expected_lastlog}"),
        "{nc}: {out:?}"
    );
}
