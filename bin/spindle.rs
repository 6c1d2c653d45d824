//! `spindle`: serve Twisted's tutorial protocols on threads.
//!
//! This file only wires the library together: parse the command line,
//! build factories, bind endpoints, run, and map failures to exit codes
//! (2: usage, 1: runtime).

mod client_cmds;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use spindle::catalog::{self, ProtocolOptions};
use spindle::duration::{parse_duration, parse_optional_duration};
use spindle::engine::{self, ChildCommand, Model};
use spindle::http;
use spindle::{Endpoint, Server, ServerConfig};

/// Twisted's tutorial servers on blocking threads, and the tools to measure
/// them against other concurrency models.
#[derive(Parser)]
#[command(name = "spindle", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a protocol (or `all` of them, each on its default port).
    Serve(ServeArgs),
    /// Put load on a server: echo, http, chat or idle connections.
    Load(spindle::load::args::LoadArgs),
    /// Serve on each model, sweep connection counts, write tables and charts.
    Bench(spindle::load::args::BenchArgs),
    /// Fetch a URL (http:// or https://) and print its body.
    Get(client_cmds::GetArgs),
    /// Log in to an IMAP4 server and print a message's subject (the
    /// tutorial's IMAP client).
    ImapSubject(client_cmds::ImapSubjectArgs),
    /// Internal: serve one connection, inherited as stdin/stdout, for
    /// `--model process`.
    #[command(hide = true)]
    ServeOne(ServeOneArgs),
}

/// `spindle serve-one --one PROTOCOL --session N <the parent's serve
/// arguments>`: what a `--model process` parent runs for each connection.
#[derive(Args)]
struct ServeOneArgs {
    /// The protocol this process serves (the parent may serve `all`).
    #[arg(long, value_name = "PROTOCOL")]
    one: String,

    /// The connection's session number on the parent's listening port.
    #[arg(long, value_name = "N")]
    session: u64,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    /// A bounded pool of worker threads, one connection per worker.
    Pool,
    /// A new thread per connection; --max-connections is its only bound.
    Thread,
    /// A new spindle process per connection, inetd-style.
    Process,
    /// One thread running a non-blocking event loop (mio).
    Reactor,
    /// A poller holds idle connections; --workers threads run those with
    /// work (Apache httpd's event MPM). For many idle clients.
    Hybrid,
}

impl From<ModelArg> for Model {
    fn from(m: ModelArg) -> Model {
        match m {
            ModelArg::Pool => Model::Pool,
            ModelArg::Thread => Model::Thread,
            ModelArg::Process => Model::Process,
            ModelArg::Reactor => Model::Reactor,
            ModelArg::Hybrid => Model::Hybrid,
        }
    }
}

/// Headings of `spindle serve --help`, so a long list stays scannable.
const SERVING: &str = "Serving";
const LIMITS: &str = "Limits";
const LINES: &str = "Line protocols (chat, answer, cmd) and string echoes";
const CHAT: &str = "Chat (chat)";
const CMD: &str = "Command server (cmd)";
const HTTP: &str = "Web server (http)";

#[derive(Args)]
#[command(after_help = "TLS: serve any protocol over TLS with \
    --listen ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem (see README.md, Serving).")]
struct ServeArgs {
    /// The protocol: echo, qotd, welcome, netstring-echo, int32-echo, chat,
    /// answer, cmd, http, or all.
    protocol: String,

    /// Where to listen (repeat for several; not with `all`).
    ///
    /// e.g. tcp:1234, tcp:port=0:interface=127.0.0.1, unix:/tmp/echo.sock.
    /// Default: the protocol's own port. TLS:
    /// ssl:8443:privateKey=key.pem:certKey=cert.pem.
    #[arg(long, value_name = "ENDPOINT", help_heading = SERVING)]
    listen: Vec<String>,

    /// Bind the default ports on this address only (`all` too).
    ///
    /// e.g. 127.0.0.1, ::1; 0.0.0.0: every IPv4 interface. Default: each
    /// protocol's own (every interface; cmd: 127.0.0.1 only). With --listen,
    /// say interface= in the endpoint instead.
    #[arg(long, value_name = "ADDR", conflicts_with = "listen", help_heading = SERVING)]
    interface: Option<std::net::IpAddr>,

    /// Add N to every default port (to run two `serve all` side by side).
    #[arg(long, default_value_t = 0, value_name = "N", help_heading = SERVING)]
    port_offset: u16,

    /// The concurrency model.
    #[arg(long, value_enum, default_value = "pool", value_name = "pool|thread|process|reactor|hybrid", help_heading = SERVING)]
    model: ModelArg,

    /// On Ctrl-C or SIGTERM, how long open connections get to finish.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION", help_heading = SERVING)]
    grace: Duration,

    /// Stack size of worker and connection threads, in bytes.
    ///
    /// Default: 262144 (256 KiB) for pool, 131072 (128 KiB) for thread,
    /// whose one thread per connection must fit 10,000 connections.
    #[arg(long, value_name = "BYTES", help_heading = SERVING)]
    stack_size: Option<usize>,

    /// Pool workers: connections served at once.
    ///
    /// Under hybrid: the threads running the connections that have work.
    /// 256 is Apache httpd's MaxRequestWorkers default (see NOTES.md).
    #[arg(long, default_value_t = engine::DEFAULT_WORKERS, value_name = "N", help_heading = LIMITS)]
    workers: usize,

    /// Accepted connections that may wait for a worker (0: none wait).
    ///
    /// Beyond this they are refused.
    #[arg(long, default_value_t = engine::DEFAULT_QUEUE, value_name = "Q", help_heading = LIMITS)]
    queue: usize,

    /// Open connections beyond which new ones are refused.
    ///
    /// Served and waiting ones count. Default 10,000; 1,000 under --model
    /// process (a process each).
    #[arg(long, value_name = "N", help_heading = LIMITS)]
    max_connections: Option<usize>,

    /// Close connections that send nothing for this long (off: never).
    ///
    /// e.g. 5m.
    #[arg(long, default_value = "off", value_parser = parse_optional_duration, value_name = "DURATION", help_heading = LIMITS)]
    idle_timeout: std::option::Option<Duration>,

    /// Drop a peer that does not read our output for this long (off: never).
    #[arg(long, default_value = "30s", value_parser = parse_optional_duration, value_name = "DURATION", help_heading = LIMITS)]
    write_timeout: std::option::Option<Duration>,

    /// Log any callback that runs longer than this (off: never).
    ///
    /// Under --model reactor or hybrid; the line names the protocol,
    /// session, peer and callback.
    #[arg(long, default_value = "100ms", value_parser = parse_optional_duration, value_name = "DURATION", help_heading = LIMITS)]
    slow_callback: std::option::Option<Duration>,

    /// Queued commands for one connection before it is a slow consumer.
    ///
    /// Commands are lines and writes queued from other threads.
    #[arg(long, default_value_t = engine::DEFAULT_OUTBOUND_QUEUE, value_name = "N", help_heading = LIMITS)]
    outbound_queue: usize,

    /// The longest line accepted, in bytes (chat, answer, cmd).
    ///
    /// A longer one is refused and the connection dropped. 16384 is
    /// Twisted's MAX_LENGTH.
    #[arg(long, default_value_t = spindle::framing::line::DEFAULT_MAX_LINE_LENGTH, value_name = "BYTES", help_heading = LINES)]
    max_line_length: usize,

    /// The longest string accepted, in bytes (netstring-echo, int32-echo).
    ///
    /// A peer announcing more is logged and dropped.
    #[arg(long, default_value_t = spindle::framing::netstring::DEFAULT_MAX_NETSTRING_LENGTH, value_name = "BYTES", help_heading = LINES)]
    max_string_length: usize,

    /// qotd: a file of quotes, one per line (default: built-in quotes).
    #[arg(long, value_name = "FILE", help_heading = LINES)]
    quotes: Option<PathBuf>,

    /// The longest nick, in characters.
    #[arg(long, default_value_t = spindle::protocols::chat_room::DEFAULT_MAX_NICK_LEN, value_name = "N", help_heading = CHAT)]
    max_nick: usize,

    /// How long a dropped slow consumer may read what it was owed.
    ///
    /// Then its connection is aborted, instead of holding its worker until
    /// --write-timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION", help_heading = CHAT)]
    drop_grace: Duration,

    /// The file `lastlog` shows the last lines of.
    #[arg(long, value_name = "FILE", default_value = spindle::protocols::cmd::DEFAULT_LOG_FILE, help_heading = CMD)]
    log_file: PathBuf,

    /// `comhash` only hashes regular files inside this directory.
    ///
    /// Symlinks are resolved. Default: the directory the server started in.
    #[arg(long, value_name = "DIR", default_value = ".", help_heading = CMD)]
    root: PathBuf,

    /// Clients served at once; the next is told "Too many connections, bye!".
    #[arg(long, default_value_t = spindle::protocols::cmd::DEFAULT_MAX_CLIENTS, value_name = "N", help_heading = CMD)]
    max_clients: usize,

    /// How long `lastlog`'s `tail` may run before it is killed.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION", help_heading = CMD)]
    lastlog_timeout: Duration,

    /// How long `exit` waits for the answers still due.
    ///
    /// lastlog and comhash answers; then the connection closes without
    /// them, logged.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION", help_heading = CMD)]
    exit_wait: Duration,

    /// Threads for blocking work (hashing, reading child processes).
    ///
    /// 10 is Twisted's reactor thread pool maximum.
    #[arg(long, default_value_t = spindle::blocking::DEFAULT_BLOCKING_THREADS, value_name = "N", help_heading = CMD)]
    blocking_threads: usize,

    /// Blocking jobs that may wait for a thread (0: only an idle one).
    ///
    /// Beyond this they are refused ("server busy").
    #[arg(long, default_value_t = spindle::blocking::DEFAULT_BLOCKING_QUEUE, value_name = "Q", help_heading = CMD)]
    blocking_queue: usize,

    /// How long a blocking job's result waits for room in a full queue.
    ///
    /// A hash or a child's output waiting for room in a connection's
    /// outbound queue is dropped after this, and the drop logged.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION", help_heading = CMD)]
    delivery_timeout: Duration,

    /// Hash on the connection's owner, not the blocking pool (a lesson).
    ///
    /// Under --model reactor one `comhash` of a big file then stalls every
    /// client (NOTES.md, "Blocking work").
    #[arg(long, help_heading = CMD)]
    comhash_inline: bool,

    /// Request line plus headers beyond this get 431.
    #[arg(long, default_value_t = http::DEFAULT_MAX_HEADER_BYTES, value_name = "BYTES", help_heading = HTTP)]
    max_header_bytes: usize,

    /// Header fields per request beyond this get 431 (at most 256).
    #[arg(long, default_value_t = http::DEFAULT_MAX_HEADERS, value_name = "N", help_heading = HTTP)]
    max_headers: usize,

    /// Request bodies (read and discarded) beyond this get 413.
    #[arg(long, default_value_t = http::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES", help_heading = HTTP)]
    max_body_bytes: u64,

    /// Time to a request's end of headers; then 408 and close (slowloris).
    ///
    /// Counted from the request's first byte (or the connection's start);
    /// also the longest pause inside a body.
    #[arg(long, default_value = "10s", value_parser = parse_optional_duration, value_name = "DURATION", help_heading = HTTP)]
    header_timeout: std::option::Option<Duration>,

    /// Idle persistent connections close after this long.
    #[arg(long, default_value = "5s", value_parser = parse_optional_duration, value_name = "DURATION", help_heading = HTTP)]
    keepalive_timeout: std::option::Option<Duration>,

    /// When connections wait for a worker: release or hold keep-alives.
    ///
    /// `release` closes persistent connections that have no request
    /// buffered so every client is served; `hold` keeps them (the classic
    /// pool: see NOTES.md).
    #[arg(long, value_enum, default_value = "release", value_name = "release|hold", help_heading = HTTP)]
    keepalive_cliff: CliffArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum CliffArg {
    /// Give the worker up when others wait (default).
    Release,
    /// Keep the persistent connection; waiting clients may starve.
    Hold,
}

impl From<CliffArg> for http::KeepAliveCliff {
    fn from(c: CliffArg) -> http::KeepAliveCliff {
        match c {
            CliffArg::Release => http::KeepAliveCliff::Release,
            CliffArg::Hold => http::KeepAliveCliff::Hold,
        }
    }
}

impl ServeArgs {
    fn config(&self) -> ServerConfig {
        ServerConfig {
            model: self.model.into(),
            workers: self.workers,
            queue: self.queue,
            max_connections: self
                .max_connections
                .unwrap_or_else(|| Model::from(self.model).default_max_connections()),
            idle_timeout: self.idle_timeout,
            write_timeout: self.write_timeout,
            slow_callback: self.slow_callback,
            grace: self.grace,
            outbound_queue: self.outbound_queue,
            stack_size: self
                .stack_size
                .unwrap_or_else(|| Model::from(self.model).default_stack_size()),
            ..ServerConfig::default()
        }
    }

    fn protocol_options(&self) -> ProtocolOptions {
        ProtocolOptions {
            quotes: self.quotes.clone(),
            max_nick_len: Some(self.max_nick),
            drop_grace: Some(self.drop_grace),
            max_line_length: Some(self.max_line_length),
            max_string_length: Some(self.max_string_length),
            log_file: Some(self.log_file.clone()),
            root: Some(self.root.clone()),
            max_clients: Some(self.max_clients),
            blocking_threads: Some(self.blocking_threads),
            blocking_queue: Some(self.blocking_queue),
            delivery_timeout: Some(self.delivery_timeout),
            lastlog_timeout: Some(self.lastlog_timeout),
            comhash_inline: self.comhash_inline,
            exit_wait: Some(self.exit_wait),
            http: http::SiteConfig {
                max_header_bytes: self.max_header_bytes,
                max_headers: self.max_headers,
                max_body_bytes: self.max_body_bytes,
                header_timeout: self.header_timeout,
                keepalive_timeout: self.keepalive_timeout,
                keepalive_cliff: self.keepalive_cliff.into(),
            },
        }
    }
}

/// A failure and the exit code it deserves.
struct Failure {
    code: u8,
    message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// A client command's failure, with the exit code its kind deserves.
fn client_failure(failure: client_cmds::ClientFailure) -> Failure {
    match failure {
        client_cmds::ClientFailure::Usage(message) => usage(message),
        client_cmds::ClientFailure::Runtime(message) => runtime(message),
    }
}

fn runtime(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn serve(args: &ServeArgs) -> Result<(), Failure> {
    if args.workers == 0 {
        return Err(usage("--workers must be at least 1"));
    }
    let names: Vec<&str> = if args.protocol == "all" {
        if !args.listen.is_empty() {
            return Err(usage(
                "--listen cannot be used with `serve all`: each protocol uses its own port",
            ));
        }
        catalog::NAMES.to_vec()
    } else {
        vec![args.protocol.as_str()]
    };
    let names = fit_the_process_model(names, args)?;
    // The stop handler goes in before anything is bound or started: a
    // Ctrl-C or SIGTERM during start-up then takes the graceful path
    // (run() sees the stopper already fired) instead of being lost or
    // killing the process half-started.
    let mut server = Server::new(args.config());
    install_signal_handlers(server.stopper())?;
    let options = args.protocol_options();
    let mut plan = Vec::new();
    for name in &names {
        let factory = catalog::build_factory(name, &options).map_err(|e| usage(e.to_string()))?;
        let endpoints: Vec<String> = if args.listen.is_empty() {
            let default = catalog::default_endpoint(name)
                .ok_or_else(|| usage(format!("no default port for {name}")))?;
            vec![default_endpoint(default, args.port_offset, args.interface)?]
        } else {
            args.listen.clone()
        };
        for text in endpoints {
            if spindle::tls_server::TlsEndpoint::is_tls(&text) {
                // ssl:PORT:privateKey=..:certKey=..: the protocol wrapped in TLS.
                let tls = spindle::tls_server::TlsEndpoint::parse(&text)
                    .map_err(|e| usage(e.to_string()))?;
                let config = tls.server_config().map_err(|e| runtime(e.to_string()))?;
                let wrapped: Arc<dyn spindle::Factory> = Arc::new(
                    spindle::tls_server::TlsFactory::new(factory.clone(), config),
                );
                plan.push((name.to_string(), tls.tcp, wrapped));
                continue;
            }
            let endpoint = Endpoint::parse(&text).map_err(|e| usage(e.to_string()))?;
            plan.push((name.to_string(), endpoint, factory.clone()));
        }
    }
    let program = std::env::current_exe()
        .map_err(|e| runtime(format!("cannot find the spindle executable: {e}")))?;
    // A child of `--model process` re-reads this very command line.
    let serve_args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .skip_while(|a| a != "serve")
        .skip(1)
        .collect();
    for (name, endpoint, factory) in plan {
        let mut child_args = vec!["serve-one".to_string(), "--one".to_string(), name.clone()];
        child_args.extend(serve_args.iter().cloned());
        let child = ChildCommand {
            program: program.clone(),
            args: child_args,
        };
        let bound = server
            .listen_with_child(&endpoint, factory, child)
            .map_err(|e| runtime(format!("cannot listen on {endpoint} for {name}: {e}")))?;
        // The protocol as the user named it, and where it can be reached.
        log::info!("{name} on {bound}");
    }
    server
        .run()
        .map_err(|e| runtime(format!("server failed: {e}")))
}

/// Under `--model process`: refuses a protocol named on the command line
/// that cannot run there, leaves it out of `all` with a warning, and logs
/// the warnings the others owe (see [`catalog::process_model_fit`]).
fn fit_the_process_model<'a>(
    names: Vec<&'a str>,
    args: &ServeArgs,
) -> Result<Vec<&'a str>, Failure> {
    use catalog::ProcessModelFit;
    if !matches!(args.model, ModelArg::Process) {
        return Ok(names);
    }
    let mut served = Vec::with_capacity(names.len());
    for name in names {
        match catalog::process_model_fit(name) {
            ProcessModelFit::Refused(why) if args.protocol == "all" => {
                log::warn!("{why}; `serve all` leaves it out");
            }
            ProcessModelFit::Refused(why) => return Err(usage(why)),
            ProcessModelFit::ServedWithWarning(warning) => {
                log::warn!("{warning}");
                served.push(name);
            }
            ProcessModelFit::Served => served.push(name),
        }
    }
    Ok(served)
}

/// One connection of `--model process`, on the socket inherited as stdin.
fn serve_one(args: &ServeOneArgs) -> Result<(), Failure> {
    let factory = catalog::build_factory(&args.one, &args.serve.protocol_options())
        .map_err(|e| usage(e.to_string()))?;
    let stopper = spindle::Stopper::new();
    install_signal_handlers(stopper.clone())?;
    engine::serve_inherited(factory, args.serve.config(), stopper, args.session)
        .map_err(|e| runtime(e.to_string()))
}

/// The exit status of a run cut short by Ctrl-C (128 + SIGINT).
const INTERRUPTED_EXIT: u8 = 130;

/// Runs a load and prints its report; exit 1 when nothing succeeded, 130
/// when Ctrl-C cut it short (the report covers what was measured).
fn load(args: &spindle::load::args::LoadArgs) -> Result<(), Failure> {
    if let Some(spindle::load::args::LoadCommand::Merge(m)) = &args.command {
        return load_merge(m);
    }
    let config = args.config().map_err(usage)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
        .map_err(|e| runtime(format!("cannot catch Ctrl-C: {e}")))?;
    unblock_stop_signals()?;
    if args.find_max_rate {
        let Some(slo) = args.slo else {
            return Err(usage("--find-max-rate needs --slo pXX=DURATION"));
        };
        let search = spindle::load::search::find_max_rate(
            &config,
            slo,
            args.step_duration,
            args.max_steps,
            &stop,
        )
        .map_err(usage)?;
        if args.json {
            println!("{}", search.to_json());
        } else {
            print!("{}", search.text());
        }
        return if search.interrupted {
            Err(Failure {
                code: INTERRUPTED_EXIT,
                message: "interrupted".into(),
            })
        } else {
            Ok(())
        };
    }
    let report = spindle::load::run_until(&config, |_| {}, &stop).map_err(runtime)?;
    if let Some(path) = &args.hlog {
        spindle::load::hdrfiles::write_hlog(path, &report).map_err(runtime)?;
    }
    if let Some(path) = &args.hgrm {
        spindle::load::hdrfiles::write_hgrm(path, &report).map_err(runtime)?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.text(args.timeline));
    }
    if report.interrupted {
        Err(Failure {
            code: INTERRUPTED_EXIT,
            message: "interrupted".into(),
        })
    } else if report.succeeded() {
        Ok(())
    } else {
        Err(runtime("no request succeeded"))
    }
}

/// `spindle load merge`: one report from several; exit 1 when nothing in
/// them succeeded, 2 when a report cannot be read.
fn load_merge(args: &spindle::load::args::MergeArgs) -> Result<(), Failure> {
    let report = spindle::load::merge::merge_files(&args.reports).map_err(usage)?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.text(args.timeline));
    }
    if report.succeeded() {
        Ok(())
    } else {
        Err(runtime("no request succeeded"))
    }
}

/// Runs a bench suite; exit 1 when every point failed.
fn bench(args: &spindle::load::args::BenchArgs) -> Result<(), Failure> {
    spindle::load::bench::check(args).map_err(usage)?;
    let exe = std::env::current_exe()
        .map_err(|e| runtime(format!("cannot find the spindle binary: {e}")))?;
    let command: Vec<String> = std::env::args().collect();
    let mut command = command.join(" ");
    if let Some(rest) = command.split_once(' ').map(|(_, rest)| rest.to_string()) {
        command = format!("spindle {rest}");
    }
    let results = spindle::load::bench::run(args, &exe, &command).map_err(runtime)?;
    print!("{}", spindle::load::bench::summary(&results));
    println!("the full table (results.md), results.json and the charts are in");
    println!("  {}", args.out.display());
    if results.points.iter().any(|p| p.ok) {
        Ok(())
    } else {
        Err(runtime("every bench point failed"))
    }
}

/// A protocol's default endpoint (`tcp:1234`) with its port shifted by
/// `offset` (`tcp:1334`) and, if given, bound on `interface` instead.
fn default_endpoint(
    endpoint: &str,
    offset: u16,
    interface: Option<std::net::IpAddr>,
) -> Result<String, Failure> {
    match Endpoint::parse(endpoint).map_err(|e| usage(e.to_string()))? {
        Endpoint::Tcp {
            port,
            interface: default_interface,
            backlog,
        } => {
            let port = port.checked_add(offset).ok_or_else(|| {
                usage(format!(
                    "--port-offset {offset} takes {endpoint} past port 65535"
                ))
            })?;
            Ok(Endpoint::Tcp {
                port,
                interface: interface.unwrap_or(default_interface),
                backlog,
            }
            .to_string())
        }
        other => Ok(other.to_string()),
    }
}

/// First Ctrl-C / SIGTERM: graceful stop. Second: exit at once.
fn install_signal_handlers(stopper: spindle::Stopper) -> Result<(), Failure> {
    let signals = Arc::new(AtomicUsize::new(0));
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            log::info!("Received a stop signal, shutting down (again to exit at once).");
            stopper.stop();
        } else {
            log::warn!("Second stop signal: exiting now.");
            std::process::exit(130);
        }
    })
    .map_err(|e| runtime(format!("cannot install the signal handler: {e}")))?;
    unblock_stop_signals()
}

/// Unblocks the signals the stop handler catches (ctrlc's `termination`
/// set: SIGINT, SIGTERM, SIGHUP). A signal mask is inherited across exec,
/// so a supervisor that spawns us with them blocked would otherwise leave
/// us deaf to them; and one sent before the handler existed, held pending
/// by such a mask, is delivered now, to the handler.
fn unblock_stop_signals() -> Result<(), Failure> {
    // SAFETY: plain libc calls on a local, zero-initialised sigset_t.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(runtime(format!(
            "cannot unblock the stop signals: {}",
            std::io::Error::from_raw_os_error(rc)
        )))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    spindle::log::init();
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
    }));
    let result = match &cli.command {
        Command::Serve(args) => serve(args),
        Command::ServeOne(args) => serve_one(args),
        Command::Load(args) => load(args),
        Command::Bench(args) => bench(args),
        Command::Get(args) => client_cmds::get(args).map_err(client_failure),
        Command::ImapSubject(args) => client_cmds::imap_subject(args).map_err(client_failure),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("spindle: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
