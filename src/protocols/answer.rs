//! The tutorial's answer bot: a table of questions it can answer.
//!
//! ```text
//! $ telnet localhost 1236
//! How are you?
//! Fine
//! What time is it?
//! I don't know what you mean
//! ```
//!
//! As in the tutorial, a question must match exactly (case and spaces
//! included); anything else, an empty line too, gets the default answer.

use crate::protocol::{FnFactory, Protocol, Reason};
use crate::transport::Transport;

/// Where `spindle serve answer` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:1236";

/// The questions the bot knows, and its answers.
pub const ANSWERS: &[(&str, &str)] = &[("How are you?", "Fine")];

/// What it says to anything else.
pub const DEFAULT_ANSWER: &str = "I don't know what you mean";

/// Answers each line. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Answer(super::lines::Lines);

/// The answer to `question`.
pub fn answer_to(question: &[u8]) -> &'static str {
    ANSWERS
        .iter()
        .find(|(q, _)| q.as_bytes() == question)
        .map_or(DEFAULT_ANSWER, |(_, a)| a)
}

impl Answer {
    /// One line from the client, without its line end.
    pub fn line_received(&mut self, line: &[u8], transport: &mut Transport) {
        transport.write_sequence(&[answer_to(line).as_bytes(), b"\r\n"]);
    }
}

impl Protocol for Answer {
    fn data_received(&mut self, data: &[u8], transport: &mut Transport) {
        // Placeholder until the line receiver lands.
        for piece in self.0.push(data) {
            match piece {
                super::lines::Piece::Line(line) => self.line_received(&line, transport),
                super::lines::Piece::TooLong => transport.lose_connection(),
            }
        }
    }

    fn connection_lost(&mut self, _reason: &Reason) {}
}

/// The factory (`AnswerFactory` in logs).
pub fn factory() -> impl crate::Factory {
    FnFactory::new("AnswerFactory", |_| {
        Box::new(Answer::default()) as Box<dyn Protocol>
    })
}
