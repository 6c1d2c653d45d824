//! End to end: a Ctrl-C or SIGTERM that reaches `spindle serve` while it is
//! still starting (before it binds or logs `starting on`) takes the graceful
//! path and exits 0, like one sent later.
//!
//! "As early as possible" is made deterministic: the child is spawned with
//! the stop signal blocked (a signal mask survives exec, as when a supervisor
//! spawns a server), and the test sends the signal right after spawn, so it
//! is pending from before `main`. spindle installs its handler, then unblocks
//! the stop signals: the pending one must reach the handler then. A build
//! that never unblocks hangs (the test fails at its deadline); one that
//! handles the signal any other way exits non-zero or by the signal.

mod util;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use util::{DEADLINE, Spindle};

/// How the child inherits the stop signal before exec.
#[derive(Clone, Copy, Debug)]
enum Inherited {
    /// Default action (terminate), blocked.
    DefaultBlocked,
    /// Ignored and blocked: a background job of a non-interactive shell
    /// starts with SIGINT ignored. Linux keeps a blocked signal pending even
    /// when ignored, and ctrlc replaces the disposition with its handler.
    IgnoredBlocked,
}

/// Spawns `spindle serve ARGS` with `sig` set up as `how`, sends `sig`
/// at once, and checks the clean stop.
fn early_signal_stops_cleanly(sig: i32, how: Inherited, args: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spindle"));
    cmd.arg("serve").args(args);
    // SAFETY: pre_exec runs in the forked child before exec; it only calls
    // async-signal-safe functions (sigaction, sigprocmask) on local data.
    unsafe {
        cmd.pre_exec(move || {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = match how {
                Inherited::DefaultBlocked => libc::SIG_DFL,
                Inherited::IgnoredBlocked => libc::SIG_IGN,
            };
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut s = Spindle::start_with(&mut cmd);
    // Right after spawn: the child is at best in its first instructions.
    s.signal(sig);
    let code = wait_status(&mut s);
    let log = s.log();
    assert_eq!(
        code,
        Ok(0),
        "signal {sig} ({how:?}) sent at spawn of `serve {}`; log:\n{log}",
        args.join(" ")
    );
    assert!(
        log.contains("Received a stop signal"),
        "the graceful path was not taken; log:\n{log}"
    );
}

/// The exit code, or `Err(signal)` if the process was killed by one.
fn wait_status(s: &mut Spindle) -> Result<i32, i32> {
    let mut status = None;
    util::wait_until(DEADLINE, || {
        status = s.child.try_wait().expect("polls spindle");
        status.is_some()
    });
    let Some(status) = status else {
        panic!(
            "spindle did not exit within {DEADLINE:?}; log:\n{}",
            s.log()
        );
    };
    match status.code() {
        Some(c) => Ok(c),
        None => Err(status.signal().unwrap_or(0)),
    }
}

const ECHO: &[&str] = &["echo", "--listen", "tcp:0:interface=127.0.0.1"];

#[test]
fn sigterm_at_spawn_stops_cleanly() {
    early_signal_stops_cleanly(libc::SIGTERM, Inherited::DefaultBlocked, ECHO);
}

#[test]
fn sigint_at_spawn_stops_cleanly() {
    early_signal_stops_cleanly(libc::SIGINT, Inherited::DefaultBlocked, ECHO);
}

#[test]
fn sigint_at_spawn_of_a_background_job_stops_cleanly() {
    early_signal_stops_cleanly(libc::SIGINT, Inherited::IgnoredBlocked, ECHO);
}

#[test]
fn sigterm_at_spawn_stops_every_model_cleanly() {
    for model in ["pool", "thread", "process", "reactor", "hybrid"] {
        let mut args = ECHO.to_vec();
        args.extend_from_slice(&["--model", model]);
        early_signal_stops_cleanly(libc::SIGTERM, Inherited::DefaultBlocked, &args);
    }
}

#[test]
fn sigterm_at_spawn_stops_a_multi_endpoint_http_server_cleanly() {
    early_signal_stops_cleanly(
        libc::SIGTERM,
        Inherited::DefaultBlocked,
        &[
            "http",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ],
    );
}
