//! Netstrings (D. J. Bernstein): `LEN:DATA,`, as Twisted's
//! `NetstringReceiver` reads and writes them.
//!
//! `LEN` is ASCII decimal with no sign, no spaces and no leading zeros:
//! `0:,` is the empty string, `05:hello,` and `00:,` are malformed. A
//! length over [`Netstring::max_length`] (default
//! [`DEFAULT_MAX_NETSTRING_LENGTH`]) is refused as soon as its digits
//! alone exceed it, before the `:` arrives, so a peer cannot make the
//! server hold an endless digit string. An incomplete netstring is not an
//! error: after `5:abc,` the receiver waits, because `abc,` is only four
//! of the five payload bytes.
//!
//! ```
//! use spindle::framing::netstring::{self, NetstringReceiver};
//! use spindle::framing::string::{StringHandler, StringTransport};
//! use spindle::testing::Harness;
//!
//! /// Answers each string with its length, as a netstring.
//! struct Lengths;
//!
//! impl StringHandler for Lengths {
//!     fn string_received(&mut self, data: &[u8], strings: &mut StringTransport<'_>) {
//!         let _ = strings.send_string(data.len().to_string().as_bytes());
//!     }
//! }
//!
//! let mut h = Harness::new(netstring::receiver(Lengths));
//! h.connect();
//! h.feed(b"5:hello,0:,3:a");
//! h.feed(b"bc,");
//! assert_eq!(h.take_output(), b"1:5,1:0,1:3,");
//! h.feed(b"05:hello,");
//! assert!(h.is_closing()); // malformed: logged, connection dropped
//! # let _: NetstringReceiver<Lengths> = netstring::receiver(Lengths);
//! ```

use super::string::{Codec, Decoded, FrameError, StringReceiver, StringTooLong};
use crate::transport::Transport;

/// Twisted's `NetstringReceiver.MAX_LENGTH`: the longest netstring
/// accepted, in payload bytes.
pub const DEFAULT_MAX_NETSTRING_LENGTH: usize = 99999;

/// The netstring codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netstring {
    max_length: usize,
}

impl Default for Netstring {
    fn default() -> Self {
        Netstring {
            max_length: DEFAULT_MAX_NETSTRING_LENGTH,
        }
    }
}

impl Netstring {
    /// Netstrings of at most `max_length` payload bytes.
    pub fn with_max_length(max_length: usize) -> Self {
        Netstring { max_length }
    }

    /// The longest payload accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

/// A receiver of netstrings with Twisted's limit, for `handler`.
pub type NetstringReceiver<H> = StringReceiver<Netstring, H>;

/// A [`NetstringReceiver`] with the default maximum length.
pub fn receiver<H: super::string::StringHandler>(handler: H) -> NetstringReceiver<H> {
    StringReceiver::new(Netstring::default(), handler)
}

/// `data` as a netstring.
pub fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 22);
    out.extend_from_slice(data.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(data);
    out.push(b',');
    out
}

impl Codec for Netstring {
    fn decode(&self, input: &[u8]) -> Decoded {
        let Some(&first) = input.first() else {
            return Decoded::Incomplete;
        };
        if !first.is_ascii_digit() {
            return Decoded::Malformed(FrameError::NoLength(first));
        }
        if first == b'0' && input.get(1).is_some_and(u8::is_ascii_digit) {
            return Decoded::Malformed(FrameError::LeadingZero);
        }
        // Read the digits, refusing as soon as their value passes the
        // maximum: with no leading zeros, more digits only make it larger.
        let max = self.max_length as u64;
        let mut length: u64 = 0;
        let mut digits = 0;
        for &b in input {
            if !b.is_ascii_digit() {
                break;
            }
            length = length
                .saturating_mul(10)
                .saturating_add(u64::from(b - b'0'));
            digits += 1;
            if length > max {
                return Decoded::TooLong { length, skip: None };
            }
        }
        let Some(&after) = input.get(digits) else {
            return Decoded::Incomplete;
        };
        if after != b':' {
            return Decoded::Malformed(FrameError::NoColon(after));
        }
        // `length <= max_length`, a usize.
        let start = digits + 1;
        let end = start + length as usize;
        match input.get(end) {
            None => Decoded::Incomplete,
            Some(b',') => Decoded::Frame {
                start,
                end,
                next: end + 1,
            },
            Some(&other) => Decoded::Malformed(FrameError::NoComma(other)),
        }
    }

    fn encode(&self, data: &[u8], transport: &mut Transport) -> Result<(), StringTooLong> {
        let mut digits = [0u8; 20];
        let mut n = data.len();
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        transport.write_sequence(&[&digits[at..], b":", data, b","]);
        Ok(())
    }

    fn max_length(&self) -> usize {
        self.max_length
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::framing::string::{StringHandler, StringTransport};
    use crate::testing::{Harness, assert_same_for_every_chunking};
    use crate::transport::Closing;

    /// Echoes each string back as a netstring, and records it; closes on
    /// `quit`.
    #[derive(Default)]
    struct Echo {
        strings: Vec<Vec<u8>>,
    }

    impl StringHandler for Echo {
        fn string_received(&mut self, data: &[u8], strings: &mut StringTransport<'_>) {
            self.strings.push(data.to_vec());
            strings.send_string(data).unwrap();
            if data == b"quit" {
                strings.lose_connection();
            }
        }
    }

    fn echo() -> NetstringReceiver<Echo> {
        receiver(Echo::default())
    }

    fn decode(input: &[u8]) -> Decoded {
        Netstring::default().decode(input)
    }

    #[test]
    fn frames_and_the_empty_string_in_every_chunking() {
        let out = assert_same_for_every_chunking(echo, b"5:hello,0:,1:,,12:hello world!,");
        assert_eq!(out.output, b"5:hello,0:,1:,,12:hello world!,");
        assert_eq!(out.closing, Closing::No);
    }

    /// Decoding `input` finds `error`, and the receiver, fed it in every
    /// chunking, echoes nothing and closes.
    fn refuses(input: &[u8], error: FrameError) {
        assert_eq!(decode(input), Decoded::Malformed(error));
        let out = assert_same_for_every_chunking(echo, input);
        assert_eq!(out.closing, Closing::Lose);
        assert_eq!(out.output, b"");
    }

    /// One test per malformed input of the issue.
    macro_rules! malformed {
        ($($name:ident: $input:expr => $error:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    refuses($input, $error);
                }
            )*
        };
    }

    malformed! {
        letters_are_no_length: b"abc" => FrameError::NoLength(b'a');
        a_bare_colon_is_no_length: b":" => FrameError::NoLength(b':');
        a_leading_space_is_no_length: b" 3:abc," => FrameError::NoLength(b' ');
        a_plus_sign_is_no_length: b"+3:abc," => FrameError::NoLength(b'+');
        a_minus_sign_is_no_length: b"-1:" => FrameError::NoLength(b'-');
        a_semicolon_is_not_a_colon: b"3;abc," => FrameError::NoColon(b';');
        a_wrong_byte_after_the_payload: b"3:abcX" => FrameError::NoComma(b'X');
        leading_zero_before_a_length: b"05:hello," => FrameError::LeadingZero;
        double_zero_is_not_the_empty_string: b"00:," => FrameError::LeadingZero;
    }

    #[test]
    fn one_past_the_limit_with_its_colon_is_too_long() {
        assert_eq!(
            decode(b"100000:"),
            Decoded::TooLong {
                length: 100000,
                skip: None
            }
        );
        let out = assert_same_for_every_chunking(echo, b"100000:");
        assert_eq!(out.closing, Closing::Lose);
    }

    #[test]
    fn a_long_digit_string_is_refused_before_any_colon() {
        assert_eq!(
            decode(b"1000000"),
            Decoded::TooLong {
                length: 100000,
                skip: None
            }
        );
        assert_eq!(decode(b"99999"), Decoded::Incomplete);
        for input in [&b"1000000"[..], b"99999999999999999999999999"] {
            let out = assert_same_for_every_chunking(echo, input);
            assert_eq!(out.closing, Closing::Lose);
        }
    }
    #[test]
    fn max_length_exactly_is_accepted_and_one_more_is_not() {
        let small = || StringReceiver::new(Netstring::with_max_length(10), Echo::default());
        let out = assert_same_for_every_chunking(small, b"10:0123456789,");
        assert_eq!(out.output, b"10:0123456789,");
        let out = assert_same_for_every_chunking(small, b"1:a,11:0123456789A,1:b,");
        assert_eq!(out.output, b"1:a,");
        assert_eq!(out.closing, Closing::Lose);
        // The default, 99999 bytes.
        let mut h = Harness::new(echo());
        h.connect();
        let big = encode(&vec![b'z'; DEFAULT_MAX_NETSTRING_LENGTH]);
        h.feed_chunked(&big, 4096);
        assert_eq!(h.take_output(), big);
        h.feed(b"100000:");
        assert!(h.is_closing());
    }

    #[test]
    fn incomplete_is_not_malformed_and_completes_length_driven() {
        assert_eq!(decode(b"5:abc,"), Decoded::Incomplete);
        assert_eq!(decode(b"0"), Decoded::Incomplete);
        assert_eq!(decode(b""), Decoded::Incomplete);
        let mut h = Harness::new(echo());
        h.connect();
        h.feed(b"5:abc,");
        assert!(!h.is_closing());
        assert_eq!(h.protocol.buffered(), b"5:abc,");
        // Observed on Twisted: `x,` completes `abc,x`.
        h.feed(b"x,");
        assert_eq!(h.take_output(), b"5:abc,x,");
        assert!(h.protocol.buffered().is_empty());
        // ... and `de,` puts `e` where the comma must be.
        h.feed(b"5:abc,de,");
        assert!(h.is_closing());
    }

    #[test]
    fn frames_before_a_bad_one_are_delivered_and_nothing_after() {
        let out = assert_same_for_every_chunking(echo, b"3:abc,junk3:def,");
        assert_eq!(out.output, b"3:abc,");
        assert_eq!(out.closing, Closing::Lose);
    }

    #[test]
    fn close_inside_a_callback_stops_delivery() {
        let out = assert_same_for_every_chunking(echo, b"1:a,4:quit,1:b,");
        assert_eq!(out.output, b"1:a,4:quit,");
        assert_eq!(out.closing, Closing::Lose);
    }

    #[test]
    fn a_tolerant_handler_sees_nothing_more_from_a_broken_peer() {
        #[derive(Default)]
        struct Tolerant(Vec<Vec<u8>>, usize);
        impl StringHandler for Tolerant {
            fn string_received(&mut self, data: &[u8], _: &mut StringTransport<'_>) {
                self.0.push(data.to_vec());
            }
            fn frame_error(&mut self, _: &FrameError, _: &mut StringTransport<'_>) {
                self.1 += 1;
            }
        }
        let mut h = Harness::new(receiver(Tolerant::default()));
        h.connect();
        h.feed(b"1:a,x1:b,");
        h.feed(b"1:c,");
        assert_eq!(h.protocol.handler.0, vec![b"a".to_vec()]);
        assert_eq!(h.protocol.handler.1, 1);
        assert!(h.protocol.buffered().is_empty());
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity_in_any_chunking(
            strings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..10),
            cuts in prop::collection::vec(any::<usize>(), 0..10),
        ) {
            let input: Vec<u8> = strings.iter().flat_map(|s| encode(s)).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            cuts.extend([0, input.len()]);
            cuts.sort_unstable();
            let mut h = Harness::new(echo());
            h.connect();
            for pair in cuts.windows(2) {
                h.feed(&input[pair[0]..pair[1]]);
            }
            prop_assert_eq!(&h.protocol.handler.strings, &strings);
            // send_string writes exactly what encode makes.
            prop_assert_eq!(h.take_output(), input.clone());
            let mut h = Harness::new(echo());
            h.connect();
            h.feed_chunked(&input, 1);
            prop_assert_eq!(&h.protocol.handler.strings, &strings);
        }
    }
}
