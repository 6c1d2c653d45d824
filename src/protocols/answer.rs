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
//! Lines end in `\r\n`, `\n` or `\r\0` (so telnet, `nc` and `nc -C` all
//! work), telnet commands are removed, answers end in `\r\n`.

use crate::framing::line::{LineConfig, LineHandler, LineReceiver, LineTransport};
use crate::protocol::{FnFactory, Protocol};

/// Where `spindle serve answer` listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "tcp:1236";

/// The questions the bot knows, and its answers.
pub const ANSWERS: &[(&str, &str)] = &[("How are you?", "Fine")];

/// What it says to anything else.
pub const DEFAULT_ANSWER: &str = "I don't know what you mean";

/// Answers each line. See the [module docs](self).
#[derive(Debug, Default, Clone, Copy)]
pub struct Answer;

/// The answer to `question`.
pub fn answer_to(question: &[u8]) -> &'static str {
    ANSWERS
        .iter()
        .find(|(q, _)| q.as_bytes() == question)
        .map_or(DEFAULT_ANSWER, |(_, a)| a)
}

impl LineHandler for Answer {
    fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
        lines.send_line(answer_to(line).as_bytes());
    }
}

/// The answer bot behind a lenient line receiver whose lines are at most
/// `max_line_length` bytes.
pub fn protocol(max_line_length: usize) -> LineReceiver<Answer> {
    LineReceiver::with_config(
        Answer,
        LineConfig::lenient().with_max_length(max_line_length),
    )
}

/// The factory (`AnswerFactory` in logs).
pub fn factory(max_line_length: usize) -> impl crate::Factory {
    FnFactory::new("AnswerFactory", move |_| {
        Box::new(protocol(max_line_length)) as Box<dyn Protocol>
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::line::DEFAULT_MAX_LINE_LENGTH;
    use crate::testing::assert_same_for_every_chunking;
    use crate::transport::Closing;

    fn bot() -> LineReceiver<Answer> {
        protocol(DEFAULT_MAX_LINE_LENGTH)
    }

    #[test]
    fn answers_the_one_question_it_knows_and_shrugs_at_the_rest() {
        let out = assert_same_for_every_chunking(
            bot,
            b"How are you?\r\nhow are you?\nWhat?\r\0\r\nHow are you?\n",
        );
        assert_eq!(
            String::from_utf8(out.output).unwrap(),
            "Fine\r\n\
             I don't know what you mean\r\n\
             I don't know what you mean\r\n\
             I don't know what you mean\r\n\
             Fine\r\n"
        );
        assert_eq!(out.closing, Closing::No);
    }

    #[test]
    fn telnet_commands_are_not_part_of_the_question() {
        let out = assert_same_for_every_chunking(bot, b"\xff\xfb\x01How are\xff\xf1 you?\r\n");
        // The peer speaks telnet: DO BINARY (so UTF-8 arrives as typed).
        // WILL ECHO is refused (DONT ECHO), as Twisted's telnet does.
        assert_eq!(out.output, b"\xff\xfd\x00\xff\xfe\x01Fine\r\n");
    }

    #[test]
    fn an_overlong_line_closes() {
        let mut input = vec![b'a'; 40];
        input.extend_from_slice(b"\r\n");
        let out = assert_same_for_every_chunking(|| protocol(32), &input);
        assert!(out.output.is_empty());
        assert_eq!(out.closing, Closing::Lose);
    }
}
