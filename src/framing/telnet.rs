//! Removing telnet commands from a byte stream (RFC 854, RFC 855).
//!
//! A telnet client mixes commands into the data it sends: option
//! negotiation (`IAC WILL/WONT/DO/DONT option`), subnegotiation
//! (`IAC SB ... IAC SE`), and two-byte commands (`IAC IP` for Ctrl-C,
//! `IAC AYT`, `IAC NOP`, ...). A line protocol meant for people at a
//! terminal must not see them as text, nor echo them to other clients.
//! [`TelnetFilter`] strips them, keeps `IAC IAC` as one literal `0xFF`
//! byte, and reports `IAC IP` (interrupt process) so the protocol can act
//! on Ctrl-C. It is a byte-at-a-time state machine, so a command split
//! across reads is removed exactly as if it had arrived whole.
//!
//! The filter never answers negotiations: a server that says nothing keeps
//! every option at its default, which is what a plain line protocol wants.

use memchr::memchr;

/// Interpret As Command: starts every telnet command.
pub const IAC: u8 = 255;
/// `IAC DONT option`: asks the other side to stop using an option.
pub const DONT: u8 = 254;
/// `IAC DO option`: asks the other side to use an option.
pub const DO: u8 = 253;
/// `IAC WONT option`: refuses to use an option.
pub const WONT: u8 = 252;
/// `IAC WILL option`: offers to use an option.
pub const WILL: u8 = 251;
/// `IAC SB`: starts a subnegotiation, ended by `IAC SE`.
pub const SB: u8 = 250;
/// `IAC IP`: interrupt process, what telnet sends for Ctrl-C.
pub const IP: u8 = 244;
/// `IAC SE`: ends a subnegotiation.
pub const SE: u8 = 240;

/// Where the filter is inside a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Plain data.
    #[default]
    Data,
    /// Just saw `IAC`.
    Iac,
    /// Saw `IAC WILL/WONT/DO/DONT`: the next byte is the option.
    Option,
    /// Inside `IAC SB ...`: dropped until `IAC SE`.
    Sub,
    /// Saw `IAC` inside a subnegotiation.
    SubIac,
}

/// What one call to [`TelnetFilter::filter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    /// Input bytes used. Less than the input's length only when
    /// `interrupt` is set: the rest follows the interrupt.
    pub consumed: usize,
    /// An `IAC IP` ended this piece of input.
    pub interrupt: bool,
}

/// Strips telnet commands from a stream fed in arbitrary pieces. See the
/// [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct TelnetFilter {
    state: State,
}

impl TelnetFilter {
    /// A filter at the start of a stream.
    pub fn new() -> Self {
        TelnetFilter::default()
    }

    /// Whether the filter is between commands, so input without an `IAC`
    /// byte passes through unchanged (callers may skip the copy).
    pub fn is_idle(&self) -> bool {
        self.state == State::Data
    }

    /// Appends the data bytes of `input` to `out`, dropping commands. Stops
    /// just after an `IAC IP`, so that the caller can handle the interrupt
    /// in its place in the stream, then call again with the rest.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> Filtered {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Data => match memchr(IAC, &input[i..]) {
                    None => {
                        out.extend_from_slice(&input[i..]);
                        i = input.len();
                    }
                    Some(n) => {
                        out.extend_from_slice(&input[i..i + n]);
                        i += n + 1;
                        self.state = State::Iac;
                    }
                },
                State::Iac => {
                    let byte = input[i];
                    i += 1;
                    self.state = State::Data;
                    match byte {
                        IAC => out.push(IAC),
                        WILL | WONT | DO | DONT => self.state = State::Option,
                        SB => self.state = State::Sub,
                        IP => {
                            return Filtered {
                                consumed: i,
                                interrupt: true,
                            };
                        }
                        // NOP, DM, BRK, AO, AYT, EC, EL, GA, a stray SE:
                        // commands without data, dropped.
                        _ => {}
                    }
                }
                State::Option => {
                    i += 1;
                    self.state = State::Data;
                }
                State::Sub => match memchr(IAC, &input[i..]) {
                    None => i = input.len(),
                    Some(n) => {
                        i += n + 1;
                        self.state = State::SubIac;
                    }
                },
                State::SubIac => {
                    // IAC IAC is an escaped 0xFF inside the subnegotiation;
                    // anything but SE keeps us inside it.
                    self.state = if input[i] == SE {
                        State::Data
                    } else {
                        State::Sub
                    };
                    i += 1;
                }
            }
        }
        Filtered {
            consumed: input.len(),
            interrupt: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in the given pieces; returns the data and the output
    /// positions at which interrupts happened.
    fn run(pieces: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut f = TelnetFilter::new();
        let mut out = Vec::new();
        let mut interrupts = Vec::new();
        for piece in pieces {
            let mut rest: &[u8] = piece;
            loop {
                let r = f.filter(rest, &mut out);
                if r.interrupt {
                    interrupts.push(out.len());
                }
                rest = &rest[r.consumed..];
                if rest.is_empty() {
                    break;
                }
            }
        }
        (out, interrupts)
    }

    /// Every way to cut `input` into two or three pieces gives `expected`.
    fn check_every_split(input: &[u8], expected: &[u8], interrupts: &[usize]) {
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let got = run(&[&input[..a], &input[a..b], &input[b..]]);
                assert_eq!(got.0, expected, "split at {a},{b}");
                assert_eq!(got.1, interrupts, "split at {a},{b}");
            }
        }
        let ones: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&ones), (expected.to_vec(), interrupts.to_vec()));
    }

    #[test]
    fn negotiation_is_removed_at_every_split() {
        check_every_split(
            b"a\xff\xfd\x01b\xff\xfb\x03c\xff\xfe\x18\xff\xfc\x1fd",
            b"abcd",
            &[],
        );
    }

    #[test]
    fn subnegotiation_is_removed_even_with_escaped_iac_inside() {
        check_every_split(b"x\xff\xfa\x18\x00VT\xff\xff100\xff\xf0y", b"xy", &[]);
    }

    #[test]
    fn iac_iac_is_one_literal_ff() {
        check_every_split(b"a\xff\xffb\xff\xff", b"a\xffb\xff", &[]);
    }

    #[test]
    fn two_byte_commands_are_dropped() {
        // NOP, AYT, AO, EC, EL, GA, DM, BRK, stray SE.
        check_every_split(
            b"1\xff\xf12\xff\xf63\xff\xf54\xff\xf7\xff\xf8\xff\xf9\xff\xf2\xff\xf3\xff\xf05",
            b"12345",
            &[],
        );
    }

    #[test]
    fn interrupt_is_reported_in_its_place() {
        check_every_split(b"ab\xff\xf4cd\xff\xf4", b"abcd", &[2, 4]);
    }

    #[test]
    fn plain_data_passes_and_idle_is_tracked() {
        let mut f = TelnetFilter::new();
        let mut out = Vec::new();
        assert!(f.is_idle());
        f.filter(b"hello\xff", &mut out);
        assert!(!f.is_idle());
        f.filter(b"\xff", &mut out);
        assert!(f.is_idle());
        assert_eq!(out, b"hello\xff");
    }
}
