//! Length-prefixed strings: an unsigned big-endian length of 1, 2 or 4
//! bytes, then that many bytes (Twisted's `Int8StringReceiver`,
//! `Int16StringReceiver`, `Int32StringReceiver`).
//!
//! An announced length over the maximum (default
//! [`DEFAULT_MAX_PREFIXED_LENGTH`], for every width, as Twisted) calls
//! `length_limit_exceeded` as soon as the prefix is read, without waiting
//! for the body; the default logs and closes. `send_string` of a string
//! whose length the prefix cannot hold (256 bytes and more for [`Int8`])
//! returns [`StringTooLong`] and writes nothing. Note that, as in Twisted,
//! you may send a string longer than the *peer's* maximum.
//!
//! ```
//! use spindle::framing::prefixed::{self, Int32StringReceiver};
//! use spindle::framing::string::{StringHandler, StringTransport};
//! use spindle::testing::Harness;
//!
//! /// Echoes each string, upper-cased.
//! struct Shout;
//!
//! impl StringHandler for Shout {
//!     fn string_received(&mut self, data: &[u8], strings: &mut StringTransport<'_>) {
//!         if let Err(e) = strings.send_string(&data.to_ascii_uppercase()) {
//!             log::warn!("{e}");
//!         }
//!     }
//! }
//!
//! let receiver: Int32StringReceiver<Shout> = prefixed::int32(Shout);
//! let mut h = Harness::new(receiver);
//! h.connect();
//! h.feed(b"\0\0\0\x02hi\0\0");
//! h.feed(b"\0\0");
//! assert_eq!(h.take_output(), b"\0\0\0\x02HI\0\0\0\0");
//! ```

use super::string::{Codec, Decoded, StringHandler, StringReceiver, StringTooLong};
use crate::transport::Transport;

/// Twisted's `IntNStringReceiver.MAX_LENGTH`, for every prefix width.
pub const DEFAULT_MAX_PREFIXED_LENGTH: usize = 99999;

/// Strings with a `BYTES`-byte big-endian length prefix; `BYTES` is 1, 2
/// or 4 (use [`Int8`], [`Int16`], [`Int32`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntN<const BYTES: usize> {
    max_length: usize,
}

/// 1-byte length prefix.
pub type Int8 = IntN<1>;
/// 2-byte big-endian length prefix.
pub type Int16 = IntN<2>;
/// 4-byte big-endian length prefix.
pub type Int32 = IntN<4>;

/// Twisted's `Int8StringReceiver`.
pub type Int8StringReceiver<H> = StringReceiver<Int8, H>;
/// Twisted's `Int16StringReceiver`.
pub type Int16StringReceiver<H> = StringReceiver<Int16, H>;
/// Twisted's `Int32StringReceiver`.
pub type Int32StringReceiver<H> = StringReceiver<Int32, H>;

impl<const BYTES: usize> IntN<BYTES> {
    /// Only the widths Twisted has; others fail to compile.
    const WIDTH_IS_VALID: () = assert!(BYTES == 1 || BYTES == 2 || BYTES == 4);

    /// Strings of at most `max_length` bytes from the peer.
    pub fn with_max_length(max_length: usize) -> Self {
        let () = Self::WIDTH_IS_VALID;
        IntN { max_length }
    }

    /// The longest length the prefix can announce: 255, 65535, 2³²−1.
    pub const LIMIT: u64 = (1u64 << (8 * BYTES)) - 1;

    /// `data` with its prefix, or [`StringTooLong`].
    pub fn encode_to_vec(&self, data: &[u8]) -> Result<Vec<u8>, StringTooLong> {
        let prefix = Self::prefix(data.len())?;
        let mut out = Vec::with_capacity(BYTES + data.len());
        out.extend_from_slice(&prefix);
        out.extend_from_slice(data);
        Ok(out)
    }

    fn prefix(length: usize) -> Result<[u8; BYTES], StringTooLong> {
        let too_long = StringTooLong {
            length,
            limit: Self::LIMIT,
        };
        let n = u64::try_from(length).map_err(|_| too_long)?;
        if n > Self::LIMIT {
            return Err(too_long);
        }
        let mut prefix = [0u8; BYTES];
        prefix.copy_from_slice(&n.to_be_bytes()[8 - BYTES..]);
        Ok(prefix)
    }
}

impl<const BYTES: usize> Default for IntN<BYTES> {
    fn default() -> Self {
        Self::with_max_length(DEFAULT_MAX_PREFIXED_LENGTH)
    }
}

impl<const BYTES: usize> Codec for IntN<BYTES> {
    fn decode(&self, input: &[u8]) -> Decoded {
        let Some(prefix) = input.get(..BYTES) else {
            return Decoded::Incomplete;
        };
        let mut be = [0u8; 8];
        be[8 - BYTES..].copy_from_slice(prefix);
        let length = u64::from_be_bytes(be);
        if length > self.max_length as u64 {
            return Decoded::TooLong {
                length,
                skip: Some((BYTES, length)),
            };
        }
        // `length <= max_length`, a usize.
        let end = BYTES + length as usize;
        if input.len() < end {
            return Decoded::Incomplete;
        }
        Decoded::Frame {
            start: BYTES,
            end,
            next: end,
        }
    }

    fn encode(&self, data: &[u8], transport: &mut Transport) -> Result<(), StringTooLong> {
        let prefix = Self::prefix(data.len())?;
        transport.write_sequence(&[&prefix, data]);
        Ok(())
    }

    fn max_length(&self) -> usize {
        self.max_length
    }
}

/// An [`Int8StringReceiver`] with the default maximum.
pub fn int8<H: StringHandler>(handler: H) -> Int8StringReceiver<H> {
    StringReceiver::new(Int8::default(), handler)
}

/// An [`Int16StringReceiver`] with the default maximum.
pub fn int16<H: StringHandler>(handler: H) -> Int16StringReceiver<H> {
    StringReceiver::new(Int16::default(), handler)
}

/// An [`Int32StringReceiver`] with the default maximum.
pub fn int32<H: StringHandler>(handler: H) -> Int32StringReceiver<H> {
    StringReceiver::new(Int32::default(), handler)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::framing::string::StringTransport;
    use crate::testing::{Harness, assert_same_for_every_chunking};
    use crate::transport::Closing;

    /// Echoes and records each string; closes on `quit`; counts refusals
    /// and, if `tolerant`, survives them.
    #[derive(Default)]
    struct Echo {
        strings: Vec<Vec<u8>>,
        refused: Vec<u64>,
        tolerant: bool,
    }

    impl StringHandler for Echo {
        fn string_received(&mut self, data: &[u8], strings: &mut StringTransport<'_>) {
            self.strings.push(data.to_vec());
            strings.send_string(data).unwrap();
            if data == b"quit" {
                strings.lose_connection();
            }
        }

        fn length_limit_exceeded(&mut self, length: u64, strings: &mut StringTransport<'_>) {
            self.refused.push(length);
            if !self.tolerant {
                strings.lose_connection();
            }
        }
    }

    #[test]
    fn frames_in_every_chunking_for_every_width() {
        let out = assert_same_for_every_chunking(|| int8(Echo::default()), b"\x02hi\x00\x01!");
        assert_eq!(out.output, b"\x02hi\x00\x01!");
        let out = assert_same_for_every_chunking(|| int16(Echo::default()), b"\x00\x02hi\x00\x00");
        assert_eq!(out.output, b"\x00\x02hi\x00\x00");
        let out =
            assert_same_for_every_chunking(|| int32(Echo::default()), b"\0\0\0\x03abc\0\0\0\0");
        assert_eq!(out.output, b"\0\0\0\x03abc\0\0\0\0");
        assert_eq!(out.closing, Closing::No);
    }

    #[test]
    fn max_length_exactly_is_accepted_and_one_more_is_refused_at_the_prefix() {
        let small = || StringReceiver::new(Int16::with_max_length(5), Echo::default());
        let out = assert_same_for_every_chunking(small, b"\x00\x05abcde");
        assert_eq!(out.output, b"\x00\x05abcde");
        // Refused on the prefix alone, frames before it delivered.
        let out = assert_same_for_every_chunking(small, b"\x00\x01a\x00\x06");
        assert_eq!(out.output, b"\x00\x01a");
        assert_eq!(out.closing, Closing::Lose);

        let mut h = Harness::new(int32(Echo::default()));
        h.connect();
        h.feed(&[0, 1, 0x86, 0x9f]); // 99999: waits for the body
        assert!(!h.is_closing());
        let mut h = Harness::new(int32(Echo::default()));
        h.connect();
        h.feed(&[0, 1, 0x86, 0xa0]); // 100000
        assert!(h.is_closing());
        assert_eq!(h.protocol.handler.refused, [100000]);
        let mut h = Harness::new(int32(Echo::default()));
        h.connect();
        h.feed(&[0xff; 4]);
        assert_eq!(h.protocol.handler.refused, [u64::from(u32::MAX)]);
    }

    #[test]
    fn a_tolerant_handler_skips_the_refused_body_in_every_chunking() {
        let make = || {
            let handler = Echo {
                tolerant: true,
                ..Echo::default()
            };
            StringReceiver::new(Int8::with_max_length(3), handler)
        };
        let out = assert_same_for_every_chunking(make, b"\x01a\x05vwxyz\x02bc");
        assert_eq!(out.output, b"\x01a\x02bc");
        assert_eq!(out.closing, Closing::No);
    }

    #[test]
    fn close_inside_a_callback_stops_delivery() {
        let out = assert_same_for_every_chunking(|| int8(Echo::default()), b"\x04quit\x01b");
        assert_eq!(out.output, b"\x04quit");
        assert_eq!(out.closing, Closing::Lose);
    }

    #[test]
    fn send_string_refuses_what_the_prefix_cannot_hold() {
        assert_eq!(
            Int8::default().encode_to_vec(&[7; 255]).map(|v| v.len()),
            Ok(256)
        );
        assert_eq!(
            Int8::default().encode_to_vec(&[7; 256]),
            Err(StringTooLong {
                length: 256,
                limit: 255
            })
        );
        assert!(Int16::default().encode_to_vec(&vec![0; 65536]).is_err());
        assert!(Int16::default().encode_to_vec(&vec![0; 65535]).is_ok());

        struct Sender(Option<StringTooLong>);
        impl StringHandler for Sender {
            fn connection_made(&mut self, strings: &mut StringTransport<'_>) {
                self.0 = strings.send_string(&[1; 300]).err();
                strings.send_string(b"ok").unwrap();
            }
            fn string_received(&mut self, _: &[u8], _: &mut StringTransport<'_>) {}
        }
        let mut h = Harness::new(int8(Sender(None)));
        h.connect();
        assert_eq!(h.take_output(), b"\x02ok");
        assert_eq!(h.protocol.handler.0.map(|e| e.length), Some(300));
        assert!(
            h.protocol
                .handler
                .0
                .unwrap()
                .to_string()
                .contains("300-byte")
        );
    }

    fn roundtrip<const B: usize>(strings: &[Vec<u8>], cuts: &[usize]) -> Result<(), TestCaseError> {
        let codec = IntN::<B>::default();
        let input: Vec<u8> = strings
            .iter()
            .flat_map(|s| codec.encode_to_vec(s).unwrap())
            .collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.extend([0, input.len()]);
        cuts.sort_unstable();
        let mut h = Harness::new(StringReceiver::new(codec, Echo::default()));
        h.connect();
        for pair in cuts.windows(2) {
            h.feed(&input[pair[0]..pair[1]]);
        }
        prop_assert_eq!(&h.protocol.handler.strings, strings);
        prop_assert_eq!(h.take_output(), input.clone());
        let mut h = Harness::new(StringReceiver::new(codec, Echo::default()));
        h.connect();
        h.feed_chunked(&input, 1);
        prop_assert_eq!(&h.protocol.handler.strings, strings);
        Ok(())
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity_in_any_chunking(
            strings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in prop::collection::vec(any::<usize>(), 0..10),
        ) {
            let short: Vec<Vec<u8>> = strings.iter().map(|s| s[..s.len().min(255)].to_vec()).collect();
            roundtrip::<1>(&short, &cuts)?;
            roundtrip::<2>(&strings, &cuts)?;
            roundtrip::<4>(&strings, &cuts)?;
        }
    }
}
