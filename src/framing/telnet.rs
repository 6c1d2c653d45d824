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
//!
//! # 8-bit input: BINARY, offered once the peer speaks telnet
//!
//! A telnet client in its default (non-binary) mode compares each typed
//! byte *with its top bit stripped* against its terminal's special
//! characters (BSD telnet's `strip()`, still in Debian's inetutils 2.4).
//! UTF-8 continuation bytes are 0x80–0xBF, so some of them look like
//! control characters and are replaced by commands: `у` (D1 83) is sent as
//! `D1 IAC IP IAC DO TIMING-MARK`, `本` (E6 9C AC) as `E6 IAC BRK IAC DO
//! TIMING-MARK AC`, 0x9A as `IAC SUSP`, 0x8F as `IAC AO`, and 0x9D (`^]`,
//! e.g. in `そ`) opens the client's own `telnet>` prompt and never leaves
//! it. In binary mode (RFC 856) the client sends every byte as it is.
//!
//! So the answering filter asks for it: `IAC DO BINARY`, **once, and only
//! after the peer has sent a telnet command of its own** (any `IAC`
//! sequence but the `IAC IAC` escape). A client like `nc` never sends one,
//! so it never sees a byte it did not ask for; a telnet client sends one at
//! the latest with the first mangled byte (or Ctrl-C), and from its answer
//! (`WILL BINARY`) on, what the user types arrives unchanged. Debian's
//! telnet on a port other than 23 starts no negotiation of its own, so
//! until then its lines may be mangled: the rule below repairs what can be
//! repaired. A peer's own `WILL BINARY` is accepted (`DO BINARY`); a
//! request that *we* send binary (`DO BINARY`) is refused like every other
//! option, as our output needs no such mode.
//!
//! # The interrupt rule: a mangled byte is not Ctrl-C
//!
//! `IAC IP` (and `BRK`, `ABORT`, `SUSP`, `AO`, `EOF`) that arrives **while
//! a UTF-8 character is incomplete** (a lead byte came, not all of its
//! continuation bytes) cannot be a key the user pressed: a terminal in line
//! mode sends whole lines, and Ctrl-C throws away the unsent line. It is
//! the client's stand-in for the continuation byte whose low 7 bits are
//! that key under the default `stty` settings, so the filter puts that byte
//! back (IP → 0x83 `^C`, BRK and ABORT → 0x9C `^\`, SUSP → 0x9A `^Z`, AO →
//! 0x8F `^O`, EOF → 0x84 `^D`) and reports no interrupt. Anywhere else, at
//! the start of a line or after a complete character, `IAC IP` is Ctrl-C
//! and is reported. A peer sending bytes that are not UTF-8 (Latin-1 é,
//! 0xE9, then Ctrl-C) can at worst have three Ctrl-C taken as data before
//! the next one is honoured: a lead byte promises at most three
//! continuation bytes, and any other byte ends the promise.

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
/// `IAC AO`: abort output, what telnet sends for Ctrl-O.
pub const AO: u8 = 245;
/// `IAC IP`: interrupt process, what telnet sends for Ctrl-C.
pub const IP: u8 = 244;
/// `IAC BRK`: break, what telnet (in its kludge line mode) sends for Ctrl-\\.
pub const BRK: u8 = 243;
/// `IAC ABORT` (RFC 1184): what telnet sends for Ctrl-\\ in line mode.
pub const ABORT: u8 = 238;
/// `IAC SUSP` (RFC 1184): what telnet sends for Ctrl-Z.
pub const SUSP: u8 = 237;
/// `IAC EOF` (RFC 1184): what telnet sends for Ctrl-D in line mode.
pub const EOF: u8 = 236;
/// The BINARY option (RFC 856): 8-bit data, not interpreted.
pub const BINARY: u8 = 0;
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
    /// a reply (an answer, or its one `IAC DO BINARY`): the rest follows
    /// the interrupt or the reply.
    pub consumed: usize,
    /// An `IAC IP` ended this piece of input.
    pub interrupt: bool,
}

/// Strips telnet commands from a stream fed in arbitrary pieces. See the
/// [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct TelnetFilter {
    state: State,
    /// Continuation bytes the last UTF-8 character of the data still needs
    /// (0 to 3): the interrupt rule's memory.
    utf8_missing: u8,
    /// `IAC DO BINARY` was sent (or a peer's `WILL BINARY` accepted).
    binary_asked: bool,
    /// The peer said it sends binary (`WILL BINARY`).
    peer_binary: bool,
}

/// The byte a telnet client in non-binary mode replaced by `command`,
/// when it stands where a UTF-8 continuation byte was due (see the
/// [module docs](self)): the continuation byte whose low 7 bits are the
/// key the command stands for, under the default `stty` settings.
fn mangled_byte(command: u8) -> Option<u8> {
    Some(match command {
        IP => 0x80 | 0x03,          // ^C, intr
        BRK | ABORT => 0x80 | 0x1c, // ^\\, quit
        SUSP => 0x80 | 0x1a,        // ^Z, susp
        AO => 0x80 | 0x0f,          // ^O, discard
        EOF => 0x80 | 0x04,         // ^D, eof
        _ => return None,
    })
}

/// How many continuation bytes a UTF-8 character still needs after `bytes`,
/// given that it needed `missing` before them. Looks at the last four bytes
/// at most: no character is longer.
fn utf8_missing_after(missing: u8, bytes: &[u8]) -> u8 {
    let is_continuation = |b: u8| (0x80..=0xbf).contains(&b);
    let tail = &bytes[bytes.len().saturating_sub(4)..];
    match tail.iter().rposition(|&b| !is_continuation(b)) {
        Some(at) => {
            let needed: u8 = match tail[at] {
                0xc2..=0xdf => 1,
                0xe0..=0xef => 2,
                0xf0..=0xf4 => 3,
                _ => 0,
            };
            // Continuation bytes after the lead; more than it needs means
            // the lead's character is over (the rest are stray bytes).
            let had = (tail.len() - at - 1) as u8;
            needed.saturating_sub(had)
        }
        None if bytes.len() < 4 => missing.saturating_sub(bytes.len() as u8),
        None => 0,
    }
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

    /// Records data that bypassed [`filter`](Self::filter) (a caller's
    /// fast path for input without `IAC` while [`is_idle`](Self::is_idle)),
    /// so the interrupt rule still knows whether a character is incomplete.
    pub fn note_data(&mut self, data: &[u8]) {
        self.utf8_missing = utf8_missing_after(self.utf8_missing, data);
    }

    /// Whether the peer agreed to send 8-bit data as it is (`WILL BINARY`).
    pub fn peer_sends_binary(&self) -> bool {
        self.peer_binary
    }

    /// Appends one data byte to `out`.
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) {
        out.push(byte);
        self.note_data(&[byte]);
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

    /// The answer to `IAC command option`, if one is owed. BINARY from the
    /// peer is welcome; every other option stays off, as in Twisted
    /// (enableLocal/enableRemote refuse everything); a WONT/DONT confirming
    /// what is already so gets no answer, so no negotiation can loop.
    fn answer(&mut self, command: u8, option: u8) -> Option<u8> {
        match (command, option) {
            (WILL, BINARY) => {
                self.peer_binary = true;
                // Our own DO already asked for it: this is the answer.
                (!std::mem::replace(&mut self.binary_asked, true)).then_some(DO)
            }
            (WONT, BINARY) => std::mem::take(&mut self.peer_binary).then_some(DONT),
            (DO, _) => Some(WONT),
            (WILL, _) => Some(DONT),
            _ => None,
        }
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
                        self.note_data(&input[i..]);
                        i = input.len();
                    }
                    Some(n) => {
                        out.extend_from_slice(&input[i..i + n]);
                        self.note_data(&input[i..i + n]);
                        i += n + 1;
                        self.state = State::Iac;
                    }
                },
                State::Iac => {
                    let byte = input[i];
                    i += 1;
                    self.state = State::Data;
                    if byte == IAC {
                        self.push(IAC, out);
                        continue;
                    }
                    // The peer speaks telnet: ask for 8-bit input, once.
                    let offered = match replies.as_deref_mut() {
                        Some(replies) if !self.binary_asked => {
                            self.binary_asked = true;
                            replies.extend_from_slice(&[IAC, DO, BINARY]);
                            true
                        }
                        _ => false,
                    };
                    let mut interrupt = false;
                    match (byte, mangled_byte(byte)) {
                        (WILL | WONT | DO | DONT, _) => self.state = State::Option(byte),
                        (SB, _) => self.state = State::Sub,
                        // The interrupt rule: inside a character, the
                        // command stands for a lost continuation byte.
                        (_, Some(lost)) if self.utf8_missing > 0 => self.push(lost, out),
                        (IP, _) => interrupt = true,
                        // NOP, DM, AYT, EC, EL, GA, a stray SE, and BRK,
                        // ABORT, SUSP, AO, EOF between characters:
                        // commands without data, dropped.
                        _ => {}
                    }
                    if interrupt || offered {
                        return Filtered {
                            consumed: i,
                            interrupt,
                        };
                    }
                }
                State::Option(command) => {
                    let option = input[i];
                    i += 1;
                    self.state = State::Data;
                    if let Some(reply) = self.answer(command, option)
                        && let Some(replies) = replies.as_deref_mut()
                    {
                        replies.extend_from_slice(&[IAC, reply, option]);
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
        // The interrupt is the first command: DO BINARY goes with it.
        check_answers_at_every_split(
            b"ab\xff\xf4\xff\xfd\x06cd",
            b"abcd",
            b"ab\xff\xfd\x00^C\xff\xfc\x06cd",
        );
    }

    #[test]
    fn every_offer_and_request_is_refused_and_refusals_are_not_answered() {
        // DO ECHO, WILL NAWS, WONT LINEMODE, DONT SGA, DO TM after a BRK.
        check_answers_at_every_split(
            b"1\xff\xfd\x012\xff\xfb\x1f3\xff\xfc\x224\xff\xfe\x03\xff\xf3\xff\xfd\x065",
            b"12345",
            b"1\xff\xfd\x00\xff\xfc\x012\xff\xfe\x1f34\xff\xfc\x065",
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

    /// What Debian's telnet (inetutils 2.4, non-binary) sent for the typed
    /// line `добрый утро 日本 é`: 0x83 became `IAC IP IAC DO TM`, 0x9C
    /// became `IAC BRK IAC DO TM`.
    const MANGLED_LINE: &[u8] = b"\xd0\xb4\xd0\xbe\xd0\xb1\xd1\x80\xd1\x8b\xd0\xb9 \xd1\xff\xf4\xff\xfd\x06\xd1\x82\xd1\x80\xd0\xbe \xe6\x97\xa5\xe6\xff\xf3\xff\xfd\x06\xac \xc3\xa9\r\n";

    #[test]
    fn bytes_the_client_turned_into_commands_are_put_back() {
        let typed = "добрый утро 日本 é\r\n".as_bytes();
        // No interrupt; one DO BINARY at the first command; each timing
        // mark refused in its place.
        let u = typed.iter().position(|&b| b == 0x83).unwrap();
        let hon = typed.iter().position(|&b| b == 0x9c).unwrap();
        let mut expected = typed[..=u].to_vec();
        expected.extend_from_slice(b"\xff\xfd\x00\xff\xfc\x06");
        expected.extend_from_slice(&typed[u + 1..=hon]);
        expected.extend_from_slice(b"\xff\xfc\x06");
        expected.extend_from_slice(&typed[hon + 1..]);
        check_answers_at_every_split(MANGLED_LINE, typed, &expected);
        check_every_split(MANGLED_LINE, typed, &[]);
    }

    #[test]
    fn susp_and_abort_output_inside_a_character_are_put_back() {
        // `Кто Џ` as the same client sent it: 0x9A became IAC SUSP, 0x8F
        // IAC AO; and ABORT (0x9C in line mode) and EOF (0x84).
        check_every_split(
            b"\xd0\xff\xed\xff\xfd\x06\xd1\x82\xd0\xbe \xd0\xff\xf5 \xe6\xff\xee\xac\xd0\xff\xec",
            "Кто Џ 本Є".as_bytes(),
            &[],
        );
        assert_eq!("Є".as_bytes(), b"\xd0\x84");
    }

    #[test]
    fn ctrl_c_after_a_complete_character_is_an_interrupt() {
        check_every_split(b"\xc3\xa9\xff\xf4", "é".as_bytes(), &[2]);
        check_every_split(b"\xff\xf4", b"", &[0]);
        // BRK between characters is a command without data.
        check_every_split(b"\xe6\x97\xa5\xff\xf3x", "日x".as_bytes(), &[]);
    }

    #[test]
    fn a_lead_byte_that_is_not_utf8_delays_ctrl_c_by_at_most_its_promise() {
        // Latin-1 é (0xE9) looks like a 3-byte lead: two interrupts are
        // taken as its missing bytes, the third is Ctrl-C.
        check_every_split(b"\xe9\xff\xf4\xff\xf4\xff\xf4", b"\xe9\x83\x83", &[3]);
        // Any byte that is not a continuation ends the promise.
        check_every_split(b"\xe9\n\xff\xf4", b"\xe9\n", &[2]);
    }

    #[test]
    fn utf8_tails_are_counted_across_pieces() {
        assert_eq!(utf8_missing_after(0, b""), 0);
        assert_eq!(utf8_missing_after(0, b"ab\xd1"), 1);
        assert_eq!(utf8_missing_after(0, b"\xf0\x9f"), 2);
        assert_eq!(utf8_missing_after(2, b"\x98"), 1);
        assert_eq!(utf8_missing_after(1, b"\x80\x80"), 0);
        assert_eq!(utf8_missing_after(0, b"\xf0\x9f\x98\x80"), 0);
        assert_eq!(utf8_missing_after(3, b"\x80\x80\x80\x80"), 0);
        assert_eq!(utf8_missing_after(0, b"\xc3\xa9\xa9"), 0);
        assert_eq!(utf8_missing_after(0, b"\xff"), 0);
        let mut f = TelnetFilter::new();
        f.note_data(b"x\xe6");
        let mut out = Vec::new();
        let r = f.filter(b"\xff\xf3\xac\xff\xf4", &mut out);
        assert!(r.interrupt);
        assert_eq!(out, &"本".as_bytes()[1..]);
    }

    /// The stream the peer would see for `input` fed whole.
    fn answers(input: &[u8]) -> Vec<u8> {
        let (_, stream) = run_answering(&[input]);
        stream
    }

    #[test]
    fn binary_is_asked_for_once_and_only_after_a_telnet_command() {
        // A peer that never sends a command (nc) never sees one.
        assert_eq!(answers(b"ab\xff\xff\xc3\xa9\r\n"), b"ab\xff\xc3\xa9\r\n");
        // The first command brings DO BINARY; its WILL is the answer, and
        // gets none; a second command brings no second offer.
        assert_eq!(
            answers(b"\xff\xf1a\xff\xfb\x00b\xff\xf1"),
            b"\xff\xfd\x00ab"
        );
        // A WILL BINARY of the peer's own is accepted, once.
        assert_eq!(answers(b"\xff\xfb\x00\xff\xfb\x00"), b"\xff\xfd\x00");
        // Switching it off again is acknowledged; refusing our DO is not.
        assert_eq!(
            answers(b"\xff\xfb\x00\xff\xfc\x00\xff\xfc\x00"),
            b"\xff\xfd\x00\xff\xfe\x00"
        );
        assert_eq!(answers(b"\xff\xf1\xff\xfc\x00"), b"\xff\xfd\x00");
        // We are not asked to send binary: refused as every option.
        assert_eq!(answers(b"\xff\xfd\x00"), b"\xff\xfd\x00\xff\xfc\x00");
        let mut f = TelnetFilter::new();
        let (mut out, mut replies) = (Vec::new(), Vec::new());
        f.filter_answering(b"\xff\xf1", &mut out, &mut replies);
        assert!(!f.peer_sends_binary());
        f.filter_answering(b"\xff\xfb\x00", &mut out, &mut replies);
        assert!(f.peer_sends_binary());
    }

    #[test]
    fn filter_without_answers_never_offers_binary() {
        let mut f = TelnetFilter::new();
        let mut out = Vec::new();
        let r = f.filter(b"\xff\xf1a\xff\xfb\x00b", &mut out);
        assert_eq!(r.consumed, 7);
        assert_eq!(out, b"ab");
    }
}
