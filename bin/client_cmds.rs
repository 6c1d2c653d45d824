//! The client subcommands: `spindle get URL` and `spindle imap-subject`.
//! Each returns one line of text on failure, which `main` prints before
//! exiting with status 1.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use spindle::client::page::{self, PageOptions};
use spindle::client::{ClientConfig, http_response, tls};
use spindle::duration::parse_duration;

/// TLS trust options shared by the client commands.
#[derive(Args)]
pub struct TlsArgs {
    /// Also trust the certificate authorities in this PEM file (e.g. a
    /// self-signed server's certificate).
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
            config.tls = Some(tls::client_config(
                self.ca_file.as_deref(),
                self.only_ca_file,
            )?);
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
pub fn get(args: &GetArgs) -> Result<(), String> {
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
        .map_err(|e| format!("cannot write the body: {e}"))
}
