//! A throw-away Dovecot on loopback serving IMAP over TLS with the given
//! certificate and key: passwd-file users `alice` (password `secret`) and
//! `bob` (password `pässwörd`, not ASCII) sharing a Maildir of the given
//! subjects (an empty one: a message without a Subject header), `dovecot -F` in the foreground as
//! root with its own base_dir, stopped when dropped. `.ci/run` installs
//! dovecot-imapd. Include with `#[path = "util/dovecot.rs"] mod dovecot;`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Debian's `nobody`/`nogroup`: Dovecot refuses to serve mail as root.
const MAIL_UID: u32 = 65534;
const MAIL_GID: u32 = 65534;

/// A running Dovecot.
pub struct Dovecot {
    child: Option<Child>,
    /// Its files (config, mail, the password file); removed on drop.
    pub dir: PathBuf,
    /// Its imaps port on 127.0.0.1.
    pub port: u16,
    /// A file holding alice's password.
    pub password_file: PathBuf,
    /// Its log lines so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

fn chown_tree(path: &Path) {
    chown(path, Some(MAIL_UID), Some(MAIL_GID)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

impl Dovecot {
    /// Starts Dovecot in `dir` (made if missing) with `cert` and
    /// `key` (PEM), alice's INBOX holding one message per subject.
    pub fn start(dir: PathBuf, cert: &Path, key: &Path, subjects: &[&str]) -> Dovecot {
        let maildir = dir.join("home/alice/Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        for (i, subject) in subjects.iter().enumerate() {
            let subject_line = if subject.is_empty() {
                String::new()
            } else {
                format!("Subject: {subject}\r\n")
            };
            let message = format!(
                "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n{subject_line}Date: Mon, 1 Jan 2024 10:0{i}:00 +0000\r\nMessage-ID: <{i}@example.com>\r\n\r\nmessage {i}\r\n"
            );
            let name = format!("100000000{i}.M{i}P1.spindle:2,S");
            std::fs::write(maildir.join("cur").join(name), message).unwrap();
        }
        chown_tree(&dir.join("home"));
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "alice:{{PLAIN}}secret:{MAIL_UID}:{MAIL_GID}::{home}\nbob:{{PLAIN}}pässwörd:{MAIL_UID}:{MAIL_GID}::{home}\n",
                home = dir.join("home/alice").display()
            ),
        )
        .unwrap();
        let password_file = dir.join("password");
        std::fs::write(&password_file, "secret\n").unwrap();

        // A port that was free a moment ago.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let conf = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = required\n\
             ssl_cert = <{cert}\n\
             ssl_key = <{key}\n\
             auth_mechanisms = plain\n\
             auth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/passwd\n}}\n\
             mail_location = maildir:~/Maildir\n\
             log_path = /dev/stderr\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {port}\n    ssl = yes\n  }}\n}}\n",
            cert = cert.display(),
            key = key.display(),
        );
        let conf_file = dir.join("dovecot.conf");
        std::fs::write(&conf_file, conf).unwrap();

        let mut child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot (Debian's dovecot-imapd; .ci/run installs it)");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("starting up") {
                    let _ = ready_tx.try_send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let dovecot = Dovecot {
            child: Some(child),
            dir,
            port,
            password_file,
            log,
        };
        // Dovecot listens before it logs "starting up".
        if ready_rx.recv_timeout(WAIT).is_err() {
            panic!("dovecot did not start: {:?}", dovecot.log.lock().unwrap());
        }
        dovecot
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: Dovecot stops its children and exits.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let (tx, rx) = crossbeam_channel::bounded(1);
            let id = child.id();
            let waiter = thread::spawn(move || {
                let _ = tx.send(child.wait());
            });
            if rx.recv_timeout(WAIT).is_err() {
                unsafe { libc::kill(id as i32, libc::SIGKILL) };
            }
            let _ = waiter.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
