//! The client's parsers never panic and never grow past their bounds, on
//! any bytes in any chunking (proptest).

use proptest::prelude::*;
use spindle::client::http_response::ResponseParser as HttpParser;
use spindle::client::imap::encoded_word::decode_header;
use spindle::client::imap::parse::ResponseParser as ImapParser;
use spindle::client::url::Url;

/// Bytes that look a little like the protocols, so the parsers get deep.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        &b"* "[..],
        b"A1 ",
        b"OK ",
        b"NO ",
        b"FETCH ",
        b"(",
        b")",
        b"\"",
        b"\\",
        b"{5}\r\n",
        b"{99}\r\n",
        b"NIL ",
        b"\r\n",
        b"1 ",
        b"[",
        b"]",
        b"HTTP/1.1 200 OK\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"\r\n\r\n",
        b"3\r\nabc\r\n",
        b"0\r\n",
        b"=?UTF-8?B?",
        b"?=",
        b"=?iso-8859-1?q?=E9",
        b"x",
    ]);
    prop::collection::vec(
        prop_oneof![
            pieces.prop_map(|p| p.to_vec()),
            prop::collection::vec(any::<u8>(), 0..8)
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn imap_parser_survives_anything(data in protocolish(), chunk in 1usize..17) {
        let mut p = ImapParser::new(64, 256);
        for piece in data.chunks(chunk) {
            p.feed(piece);
            for _ in 0..1000 {
                match p.next_response() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn http_parser_survives_anything(data in protocolish(), chunk in 1usize..17) {
        let mut p = HttpParser::new(256, 256);
        for piece in data.chunks(chunk) {
            match p.feed(piece) {
                Ok(Some(r)) => prop_assert!(r.body.len() <= 256),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        let _ = p.finish();
    }

    #[test]
    fn encoded_words_and_urls_never_panic(data in protocolish(), text in ".{0,60}") {
        let _ = decode_header(&data);
        let _ = decode_header(text.as_bytes());
        if let Ok(u) = Url::parse(&format!("http://{text}")) {
            let _ = u.join(&text);
        }
    }
}
