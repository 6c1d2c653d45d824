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
//! [`TelnetFilter::filter_answering`] also answers negotiations as
//! Twisted's `conch.telnet.Telnet` does by default: every option stays off,
//! so `DO x` gets `WONT x` and `WILL x` gets `DONT x`; `WONT`/`DONT` (already
//! off) get nothing, so no negotiation can loop. Answering matters: telnet
//! clients send `IAC DO TIMING-MARK` after Ctrl-C or `Ctrl-\` and
//! discard everything the server sends until the answer comes (RFC 860);
//! a server that stays silent leaves the user's terminal blank for good.
//! `WONT TIMING-MARK` is Twisted's answer, and RFC 860 allows it: "even if
//! the option request (DO TIMING-MARK) is refused (by WON'T TIMING-MARK)
//! the requester is at least assured that the refuser has received (if not
//! processed) all previous data".
//! [`TelnetFilter::filter`] strips without answering.

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
/// The TIMING-MARK option (RFC 860): clients send `IAC DO TIMING_MARK`
/// after an interrupt and wait for the answer.
pub const TIMING_MARK: u8 = 6;
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
    /// Saw `IAC WILL/WONT/DO/DONT` (the command kept): the next byte is
    /// the option.
    Option(u8),
    /// Inside `IAC SB ...`: dropped until `IAC SE`.
    Sub,
    /// Saw `IAC` inside a subnegotiation.
    SubIac,
}

/// What one call to [`TelnetFilter::filter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    /// Input bytes used. Less than the input's length only when
    /// `interrupt` is set, or [`TelnetFilter::filter_answering`] produced
    /// a reply: the rest follows the interrupt or the reply.
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
    /// Negotiations are dropped unanswered.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> Filtered {
        self.run(input, out, None)
    }

    /// As [`filter`](Self::filter), and refuses every option offered or
    /// requested (see the [module docs](self)): the answer is appended to
    /// `replies`, and the call stops just after the negotiation, so the
    /// caller can handle the data before it, then send `replies` in its
    /// place in the stream (RFC 860's "appropriate place"), then call again
    /// with the rest. One 3-byte answer per 3-byte request, at most.
    pub fn filter_answering(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        replies: &mut Vec<u8>,
    ) -> Filtered {
        self.run(input, out, Some(replies))
    }

    fn run(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        mut replies: Option<&mut Vec<u8>>,
    ) -> Filtered {
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
                        WILL | WONT | DO | DONT => self.state = State::Option(byte),
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
                State::Option(command) => {
                    let option = input[i];
                    i += 1;
                    self.state = State::Data;
                    // Twisted's enableLocal/enableRemote refuse everything;
                    // a WONT/DONT confirms what is already so: no answer.
                    let refusal = match command {
                        DO => Some(WONT),
                        WILL => Some(DONT),
                        _ => None,
                    };
                    if let (Some(refusal), Some(replies)) = (refusal, replies.as_deref_mut()) {
                        replies.extend_from_slice(&[IAC, refusal, option]);
                        return Filtered {
                            consumed: i,
                            interrupt: false,
                        };
                    }
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

    /// Feeds `input` in the given pieces to `filter_answering`; returns the
    /// data and the stream as the peer would see it: each reply after the
    /// data that came before its request.
    fn run_answering(pieces: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut f = TelnetFilter::new();
        let mut data = Vec::new();
        let mut stream = Vec::new();
        for piece in pieces {
            let mut rest: &[u8] = piece;
            while !rest.is_empty() {
                let mut out = Vec::new();
                let mut replies = Vec::new();
                let r = f.filter_answering(rest, &mut out, &mut replies);
                assert!(replies.len() <= 3, "one reply per call");
                assert!(r.consumed > 0 || rest.is_empty(), "progress");
                data.extend_from_slice(&out);
                stream.extend_from_slice(&out);
                stream.extend_from_slice(&replies);
                if r.interrupt {
                    stream.extend_from_slice(b"^C");
                }
                rest = &rest[r.consumed..];
            }
        }
        (data, stream)
    }

    fn check_answers_at_every_split(input: &[u8], data: &[u8], stream: &[u8]) {
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let got = run_answering(&[&input[..a], &input[a..b], &input[b..]]);
                assert_eq!(got, (data.to_vec(), stream.to_vec()), "split at {a},{b}");
            }
        }
        let ones: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run_answering(&ones), (data.to_vec(), stream.to_vec()));
    }

    #[test]
    fn do_timing_mark_after_an_interrupt_gets_wont_in_its_place() {
        // What telnet sends for Ctrl-C: IAC IP IAC DO TM.
        check_answers_at_every_split(b"ab\xff\xf4\xff\xfd\x06cd", b"abcd", b"ab^C\xff\xfc\x06cd");
    }

    #[test]
    fn every_offer_and_request_is_refused_and_refusals_are_not_answered() {
        // DO ECHO, WILL NAWS, WONT LINEMODE, DONT SGA, DO TM after a BRK.
        check_answers_at_every_split(
            b"1\xff\xfd\x012\xff\xfb\x1f3\xff\xfc\x224\xff\xfe\x03\xff\xf3\xff\xfd\x065",
            b"12345",
            b"1\xff\xfc\x012\xff\xfe\x1f34\xff\xfc\x065",
        );
    }

    #[test]
    fn filter_never_answers() {
        let mut f = TelnetFilter::new();
        let mut out = Vec::new();
        let r = f.filter(b"a\xff\xfd\x06b", &mut out);
        assert_eq!(r.consumed, 5);
        assert_eq!(out, b"ab");
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
