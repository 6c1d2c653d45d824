//! The client subcommands: `spindle get URL` and `spindle imap-subject`.
//! Each returns one line of text on failure, which `main` prints before
//! exiting: status 2 for a usage error (a bad URL or endpoint on the command
//! line, an impossible option), 1 for anything that went wrong at run time.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use spindle::client::imap::{self, ImapOptions, ImapSession};
use spindle::client::page::{self, PageOptions};
use spindle::client::{ClientConfig, ClientEndpoint, http_response, tls};
use spindle::duration::parse_duration;

/// Why a client command failed, and so its exit status.
pub enum ClientFailure {
    /// The command line asks for something impossible: exit 2.
    Usage(String),
    /// The network, the server or a file let us down: exit 1.
    Runtime(String),
}

impl From<String> for ClientFailure {
    fn from(message: String) -> Self {
        ClientFailure::Runtime(message)
    }
}

/// TLS trust options shared by the client commands.
#[derive(Args)]
pub struct TlsArgs {
    /// Also trust the certificate authorities in this PEM file; a server
    /// certificate that is one of them (a self-signed one) is trusted as
    /// that exact certificate, its name and dates still checked.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,

    /// Trust only --ca-file, not the system's authorities.
    #[arg(long, requires = "ca_file")]
    only_ca_file: bool,
}

impl TlsArgs {
    /// The client settings these options ask for.
    pub fn client_config(&self, tls_needed: bool) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::default();
        if tls_needed || self.ca_file.is_some() {
            config.tls = Some(
                tls::client_config(self.ca_file.as_deref(), self.only_ca_file)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(config)
    }
}

/// `spindle get URL`.
#[derive(Args)]
pub struct GetArgs {
    /// The URL: http://... or https://...
    url: String,

    /// Redirects followed before giving up.
    #[arg(long, default_value_t = page::DEFAULT_MAX_REDIRECTS, value_name = "N")]
    max_redirects: u32,

    /// Time for connecting and the TLS handshake.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    connect_timeout: Duration,

    /// Time for each whole request.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,

    /// Time the server may stay silent mid-response.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    idle_timeout: Duration,

    /// Largest body accepted, in bytes.
    #[arg(long, default_value_t = http_response::DEFAULT_MAX_BODY, value_name = "BYTES")]
    max_body: usize,

    /// Largest status line plus headers accepted, in bytes.
    #[arg(long, default_value_t = http_response::DEFAULT_MAX_HEAD, value_name = "BYTES")]
    max_head: usize,

    #[command(flatten)]
    tls: TlsArgs,
}

/// Fetches the page and writes its body to stdout.
pub fn get(args: &GetArgs) -> Result<(), ClientFailure> {
    // A URL that cannot be fetched is the command line's fault; one that a
    // redirect names is the server's (a runtime failure, from fetch_page).
    spindle::client::url::Url::parse(&args.url).map_err(|e| ClientFailure::Usage(e.to_string()))?;
    let options = PageOptions {
        max_redirects: args.max_redirects,
        connect_timeout: args.connect_timeout,
        request_timeout: args.timeout,
        idle_timeout: args.idle_timeout,
        max_head: args.max_head,
        max_body: args.max_body,
        client: args
            .tls
            .client_config(args.url.to_ascii_lowercase().starts_with("https:"))?,
    };
    let body = page::fetch_page(&args.url, &options).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    out.write_all(&body)
        .and_then(|()| out.flush())
        .map_err(|e| ClientFailure::Runtime(format!("cannot write the body: {e}")))
}

/// `spindle imap-subject`.
#[derive(Args)]
pub struct ImapSubjectArgs {
    /// The server, e.g. tls:imap.example.com:993 (or tcp:HOST:143).
    #[arg(long, value_name = "ENDPOINT")]
    endpoint: String,

    /// The user name.
    #[arg(long)]
    user: String,

    /// A file holding the password (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    password_file: PathBuf,

    /// The mailbox to open.
    #[arg(long, default_value = "INBOX")]
    mailbox: String,

    /// Which message (sequence number, from 1).
    #[arg(long, default_value_t = 1, value_name = "N")]
    message: u32,

    /// Time for the greeting and for each command.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,

    /// Largest literal accepted from the server, in bytes.
    #[arg(long, default_value_t = imap::parse::DEFAULT_MAX_LITERAL, value_name = "BYTES")]
    max_literal: usize,

    /// Longest response line accepted, in bytes.
    #[arg(long, default_value_t = imap::parse::DEFAULT_MAX_LINE, value_name = "BYTES")]
    max_line: usize,

    #[command(flatten)]
    tls: TlsArgs,
}

/// Reads the password: the file's bytes without one trailing newline.
fn read_password(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(bytes)
}

/// Logs in, opens the mailbox, prints the subject of one message.
pub fn imap_subject(args: &ImapSubjectArgs) -> Result<(), ClientFailure> {
    if args.message == 0 {
        return Err(ClientFailure::Usage("--message counts from 1".into()));
    }
    let endpoint =
        ClientEndpoint::parse(&args.endpoint).map_err(|e| ClientFailure::Usage(e.to_string()))?;
    let password = read_password(&args.password_file)?;
    let config = args
        .tls
        .client_config(matches!(endpoint, ClientEndpoint::Tls { .. }))?;
    let options = ImapOptions {
        command_timeout: args.timeout,
        max_literal: args.max_literal,
        max_line: args.max_line,
        ..ImapOptions::default()
    };
    let mut session =
        ImapSession::connect(&endpoint, config, options).map_err(|e| e.to_string())?;
    session
        .login(&args.user, &password)
        .map_err(|e| e.to_string())?;
    let mailbox = session.select(&args.mailbox).map_err(|e| e.to_string())?;
    if mailbox.exists == 0 {
        return Err(format!("mailbox {} is empty", args.mailbox).into());
    }
    if args.message > mailbox.exists {
        return Err(format!(
            "mailbox {} has {} messages; there is no message {}",
            args.mailbox, mailbox.exists, args.message
        )
        .into());
    }
    let envelope = session
        .fetch_envelope(args.message)
        .map_err(|e| e.to_string())?;
    let subject = envelope.subject.unwrap_or_default();
    if args.message == 1 {
        println!("First message subject: {subject}");
    } else {
        println!("Message {} subject: {subject}", args.message);
    }
    if let Err(e) = session.logout() {
        log::warn!("logout: {e}");
    }
    Ok(())
}
