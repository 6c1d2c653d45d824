//! RFC 2047 encoded words in headers: `=?UTF-8?B?SGVsbG8=?=`,
//! `=?ISO-8859-1?Q?caf=E9?=`.
//!
//! Adjacent encoded words separated only by whitespace join without it,
//! and their bytes join before decoding, so a character split across two
//! words survives. Charsets: UTF-8, US-ASCII and ISO-8859-1 (Latin-1,
//! with windows-1252 read as Latin-1); a word in any other charset, or one
//! that does not decode, is left as it was.

/// Decodes every encoded word in `raw` (header bytes, UTF-8 or not).
pub fn decode_header(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut segments: Vec<Segment> = Vec::new();
    let mut rest: &str = &text;
    while let Some(start) = rest.find("=?") {
        match parse_word(&rest[start..]) {
            Some((word, len)) => {
                if start > 0 {
                    segments.push(Segment::Text(rest[..start].to_string()));
                }
                segments.push(word);
                rest = &rest[start + len..];
            }
            None => {
                segments.push(Segment::Text(rest[..start + 2].to_string()));
                rest = &rest[start + 2..];
            }
        }
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest.to_string()));
    }
    render(segments)
}

enum Segment {
    Text(String),
    Word { charset: String, bytes: Vec<u8> },
}

fn render(segments: Vec<Segment>) -> String {
    let mut out = String::new();
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut held_space = String::new();
    for seg in segments {
        match seg {
            Segment::Word { charset, bytes } => {
                held_space.clear(); // whitespace between two words is dropped
                match &mut pending {
                    Some((cs, b)) if *cs == charset => b.extend_from_slice(&bytes),
                    _ => {
                        if let Some((cs, b)) = pending.take() {
                            out.push_str(&to_text(&cs, &b));
                        }
                        pending = Some((charset, bytes));
                    }
                }
            }
            Segment::Text(t) => {
                if pending.is_some() && t.chars().all(char::is_whitespace) {
                    held_space.push_str(&t);
                    continue;
                }
                if let Some((cs, b)) = pending.take() {
                    out.push_str(&to_text(&cs, &b));
                }
                out.push_str(&held_space);
                held_space.clear();
                out.push_str(&t);
            }
        }
    }
    if let Some((cs, b)) = pending {
        out.push_str(&to_text(&cs, &b));
    }
    out.push_str(&held_space);
    // Folded header lines come through IMAP with their CRLF; unfold them.
    out.replace("\r\n", "").replace('\n', "")
}

fn to_text(charset: &str, bytes: &[u8]) -> String {
    match charset {
        "utf-8" | "utf8" | "us-ascii" | "ascii" => String::from_utf8_lossy(bytes).into_owned(),
        _ => bytes.iter().map(|&b| char::from(b)).collect(), // Latin-1
    }
}

/// An encoded word at the start of `s`: the segment and its length.
fn parse_word(s: &str) -> Option<(Segment, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, after) = inner.split_once('?')?;
    let (encoding, after) = after.split_once('?')?;
    let end = after.find("?=")?;
    let payload = &after[..end];
    if payload.contains(char::is_whitespace) || charset.is_empty() {
        return None;
    }
    // RFC 2231 adds a language: `UTF-8*en`.
    let charset = charset.split('*').next()?.to_ascii_lowercase();
    if !matches!(
        charset.as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii" | "iso-8859-1" | "latin1" | "windows-1252"
    ) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64(payload)?,
        "Q" | "q" => q_decode(payload)?,
        _ => return None,
    };
    let len = 2 + inner.len() - after.len() + end + 2;
    Some((Segment::Word { charset, bytes }, len))
}

fn q_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_b_and_q_words() {
        assert_eq!(
            decode_header(b"=?UTF-8?B?R3LDvMOfZSBhdXMgWsO8cmljaA==?="),
            "Grüße aus Zürich"
        );
        assert_eq!(
            decode_header(b"=?iso-8859-1?q?caf=E9_cr=E8me?="),
            "café crème"
        );
        assert_eq!(
            decode_header(b"Re: =?utf-8?Q?na=C3=AFve?= idea"),
            "Re: naïve idea"
        );
    }

    #[test]
    fn whitespace_between_words_goes_and_split_characters_join() {
        // "ü" is C3 BC, split across two words.
        assert_eq!(
            decode_header(b"=?UTF-8?Q?Gr=C3?=\r\n =?UTF-8?Q?=BC=C3=9Fe?="),
            "Grüße"
        );
        assert_eq!(decode_header(b"=?UTF-8?Q?a?= =?UTF-8?Q?b?= c"), "ab c");
        assert_eq!(decode_header(b"=?UTF-8?Q?a?= =?ISO-8859-1?Q?=E9?="), "aé");
    }

    #[test]
    fn leaves_what_it_cannot_decode() {
        for s in [
            "plain subject",
            "=?KOI8-R?B?8NLJ18XU?=",
            "=?UTF-8?X?abc?=",
            "=?UTF-8?B?not base64!?=",
            "price =? maybe",
            "=?UTF-8?Q?=ZZ?=",
            "=?",
        ] {
            assert_eq!(decode_header(s.as_bytes()), s);
        }
        assert_eq!(
            decode_header("raw 8-bit: Grüße".as_bytes()),
            "raw 8-bit: Grüße"
        );
    }
}
