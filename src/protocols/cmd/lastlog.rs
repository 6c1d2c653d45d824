//! `lastlog`: the last lines of the server's log file, from a `tail` child.
//!
//! The tutorial wrote `Begin lastlog` / `End lastlog` around *each chunk*
//! of the child's output, so a long answer came back with several pairs,
//! and a failing `tail` left the client waiting for ever. Here the output
//! is collected (bounded by [`MAX_LASTLOG_OUTPUT`]) and answered once, when
//! the child has ended: one `Begin`/`End` pair however the pipe cut it, or
//! one `An error occured: ...` line with the reason.

use std::ffi::OsString;
use std::path::Path;

use crate::spawn::ProcessEnd;

/// Lines `lastlog` shows (`tail -n 10`).
pub const LASTLOG_LINES: usize = 10;
/// The most output kept from `tail`; more is an error, not a truncation.
pub const MAX_LASTLOG_OUTPUT: usize = 64 * 1024;
/// The most of `tail`'s stderr kept for the error message.
const MAX_ERR_OUTPUT: usize = 1024;

/// The argv of the child: no shell, the path passed as one argument after
/// `--` so that no file name is taken for an option.
pub fn tail_argv(log_file: &Path) -> Vec<OsString> {
    vec![
        "tail".into(),
        "-n".into(),
        LASTLOG_LINES.to_string().into(),
        "--".into(),
        log_file.as_os_str().to_owned(),
    ]
}

/// What `tail` said so far, and the answer once it ended.
#[derive(Debug, Default)]
pub struct LastLogOutput {
    out: Vec<u8>,
    err: Vec<u8>,
    overflow: bool,
}

impl LastLogOutput {
    /// A chunk of stdout.
    pub fn push_out(&mut self, data: &[u8]) {
        if self.out.len() + data.len() > MAX_LASTLOG_OUTPUT {
            self.overflow = true;
        } else {
            self.out.extend_from_slice(data);
        }
    }

    /// A chunk of stderr (kept up to a bound, for the error message).
    pub fn push_err(&mut self, data: &[u8]) {
        let room = MAX_ERR_OUTPUT.saturating_sub(self.err.len());
        self.err.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The whole answer to the client, given how the child ended.
    pub fn answer(&self, end: &ProcessEnd) -> String {
        if !end.is_success() {
            let said = String::from_utf8_lossy(&self.err);
            let said = said.lines().map(str::trim).find(|l| !l.is_empty());
            return match said {
                Some(said) => format!("An error occured: tail {end}: {said}\n"),
                None => format!("An error occured: tail {end}\n"),
            };
        }
        if self.overflow {
            return format!(
                "An error occured: the last lines of the log are longer than {MAX_LASTLOG_OUTPUT} bytes\n"
            );
        }
        let text = String::from_utf8_lossy(&self.out);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let mut answer = String::from("Begin lastlog\n");
        if !body.is_empty() {
            // `==> file <==` headers, as the tutorial dropped them.
            for line in body.split('\n').filter(|l| !l.starts_with("==")) {
                answer.push_str(line);
                answer.push('\n');
            }
        }
        answer.push_str("End lastlog\n");
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"==> /var/log/x <==\nline one\n\nline three\n==skip\nlast";

    #[test]
    fn one_begin_end_pair_for_every_chunking() {
        let expected = "Begin lastlog\nline one\n\nline three\nlast\nEnd lastlog\n";
        for chunk in 1..=SAMPLE.len() {
            let mut o = LastLogOutput::default();
            for piece in SAMPLE.chunks(chunk) {
                o.push_out(piece);
            }
            assert_eq!(
                o.answer(&ProcessEnd::Exited(0)),
                expected,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn empty_log_and_trailing_newline() {
        let o = LastLogOutput::default();
        assert_eq!(
            o.answer(&ProcessEnd::Exited(0)),
            "Begin lastlog\nEnd lastlog\n"
        );
        let mut o = LastLogOutput::default();
        o.push_out(b"a\nb\n");
        assert_eq!(
            o.answer(&ProcessEnd::Exited(0)),
            "Begin lastlog\na\nb\nEnd lastlog\n"
        );
    }

    #[test]
    fn failures_give_one_error_line_with_the_reason() {
        let mut o = LastLogOutput::default();
        o.push_err(b"tail: cannot open '/x' for reading: No such file or directory\n");
        assert_eq!(
            o.answer(&ProcessEnd::Exited(1)),
            "An error occured: tail exited with status 1: tail: cannot open '/x' for reading: No such file or directory\n"
        );
        let o = LastLogOutput::default();
        assert_eq!(
            o.answer(&ProcessEnd::Signaled(9)),
            "An error occured: tail killed by signal 9\n"
        );
        let mut o = LastLogOutput::default();
        o.push_out(&vec![b'x'; MAX_LASTLOG_OUTPUT]);
        o.push_out(b"y");
        assert!(
            o.answer(&ProcessEnd::Exited(0))
                .starts_with("An error occured: the last lines")
        );
        let mut o = LastLogOutput::default();
        o.push_err(&vec![b'e'; 5000]);
        assert_eq!(o.err.len(), MAX_ERR_OUTPUT);
    }

    #[test]
    fn the_path_is_one_argument_after_double_dash() {
        let argv = tail_argv(Path::new("-f; rm x"));
        assert_eq!(argv, ["tail", "-n", "10", "--", "-f; rm x"]);
    }
}
