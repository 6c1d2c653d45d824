//! Tests of [`super::LineReceiver`]: every rule in the module docs, fed in
//! every chunking.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::testing::{Harness, assert_same_for_every_chunking};
use crate::transport::Closing;

/// A scripted handler whose output shows what it saw: each line as
/// `<line>`, raw bytes as they came. Lines `quit`/`abort` close, `raw`
/// switches to raw mode; in raw mode `#` switches back, handing the bytes
/// after it back as `extra`.
#[derive(Default)]
struct Script {
    /// Keep the connection open on overlong lines, writing `!`.
    tolerate_long: bool,
    lines: Vec<Vec<u8>>,
    lost: Option<Reason>,
}

impl LineHandler for Script {
    fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
        self.lines.push(line.to_vec());
        lines.write_sequence(&[b"<", line, b">"]);
        match line {
            b"quit" => lines.lose_connection(),
            b"abort" => lines.abort_connection(),
            b"raw" => lines.set_raw_mode(),
            b"pause" => lines.pause_producing(),
            _ => {}
        }
    }

    fn raw_data_received(&mut self, data: &[u8], lines: &mut LineTransport<'_>) {
        match memchr(b'#', data) {
            Some(i) => {
                lines.write(&data[..i]);
                lines.set_line_mode(&data[i + 1..]);
            }
            None => lines.write(data),
        }
    }

    fn line_length_exceeded(&mut self, data: &[u8], lines: &mut LineTransport<'_>) {
        if self.tolerate_long {
            assert!(data.len() > lines.max_length());
            lines.write(b"!");
        } else {
            lines.lose_connection();
        }
    }

    fn connection_lost(&mut self, reason: &Reason) {
        self.lost = Some(reason.clone());
    }
}

fn crlf() -> LineReceiver<Script> {
    LineReceiver::new(Script::default())
}

fn lenient() -> LineReceiver<Script> {
    LineReceiver::with_config(Script::default(), LineConfig::lenient())
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn lines_and_the_empty_line_in_every_chunking() {
    let out = assert_same_for_every_chunking(crlf, b"a\r\n\r\nbc\r\npartial");
    assert_eq!(text(&out.output), "<a><><bc>");
    assert_eq!(out.closing, Closing::No);
}

#[test]
fn delimiter_split_across_reads() {
    let mut h = Harness::new(crlf());
    h.connect();
    h.feed(b"ab\r");
    assert_eq!(h.take_output(), b"");
    assert_eq!(h.protocol.buffered(), b"ab\r");
    h.feed(b"\ncd\r");
    h.feed(b"\n");
    assert_eq!(h.take_text(), "<ab><cd>");
    assert!(h.protocol.buffered().is_empty());
}

#[test]
fn bare_newline_is_data_with_the_crlf_delimiter() {
    // Observed on Twisted: `a\nb\r\n` is one line.
    let out = assert_same_for_every_chunking(crlf, b"a\nb\r\n\r\r\n");
    assert_eq!(text(&out.output), "<a\nb><\r>");
}

#[test]
fn newline_delimiter_leaves_the_cr_of_crlf_clients() {
    let make = || {
        LineReceiver::with_config(
            Script::default(),
            LineConfig::default().with_delimiter(b"\n"),
        )
    };
    let out = assert_same_for_every_chunking(make, b"a\r\nb\n\n");
    assert_eq!(text(&out.output), "<a\r><b><>");
}

#[test]
fn long_and_self_overlapping_delimiters_split_where_a_forward_search_would() {
    let make = || {
        LineReceiver::with_config(
            Script::default(),
            LineConfig::default().with_delimiter(b"aab"),
        )
    };
    let out = assert_same_for_every_chunking(make, b"aaabxaabaab");
    assert_eq!(text(&out.output), "<a><x><>");
    let make = || {
        LineReceiver::with_config(
            Script::default(),
            LineConfig::default().with_delimiter(b"--"),
        )
    };
    let out = assert_same_for_every_chunking(make, b"x---y--");
    assert_eq!(text(&out.output), "<x><-y>");
}

#[test]
fn lenient_accepts_crlf_lf_and_telnet_cr_nul() {
    let out = assert_same_for_every_chunking(lenient, b"a\r\nb\nc\r\0d\re\n\n\r\n\r\0x\0y\n");
    assert_eq!(text(&out.output), "<a><b><c><d\re><><><><x\0y>");
}

#[test]
fn lenient_cr_at_the_end_of_a_read_then_lf() {
    let mut h = Harness::new(lenient());
    h.connect();
    h.feed(b"a\r");
    assert_eq!(h.take_output(), b"");
    h.feed(b"\n");
    assert_eq!(h.take_text(), "<a>");
    h.feed(b"b\r");
    h.feed(b"\0");
    assert_eq!(h.take_text(), "<b>");
}

#[test]
fn lenient_sends_crlf_and_exact_sends_its_delimiter() {
    struct Greeter;
    impl LineHandler for Greeter {
        fn connection_made(&mut self, lines: &mut LineTransport<'_>) {
            lines.send_line(b"hi");
        }
        fn line_received(&mut self, _: &[u8], _: &mut LineTransport<'_>) {}
    }
    let mut h = Harness::new(LineReceiver::with_config(Greeter, LineConfig::lenient()));
    h.connect();
    assert_eq!(h.take_output(), b"hi\r\n");
    let mut h = Harness::new(LineReceiver::with_config(
        Greeter,
        LineConfig::default().with_delimiter(b"\n"),
    ));
    h.connect();
    assert_eq!(h.take_output(), b"hi\n");
}

#[test]
fn max_length_exactly_is_accepted_and_one_more_is_not() {
    let small = |max| {
        move || {
            LineReceiver::with_config(
                Script::default(),
                LineConfig::default().with_max_length(max),
            )
        }
    };
    let out = assert_same_for_every_chunking(small(8), b"12345678\r\nok\r\n");
    assert_eq!(text(&out.output), "<12345678><ok>");
    let out = assert_same_for_every_chunking(small(8), b"ok\r\n123456789\r\nnever\r\n");
    assert_eq!(text(&out.output), "<ok>");
    assert_eq!(out.closing, Closing::Lose);

    // The default limit, as Twisted: 16384 accepted, 16385 not.
    for chunk in [1, 7, 4096, 1 << 20] {
        let mut line = vec![b'x'; DEFAULT_MAX_LINE_LENGTH];
        line.extend_from_slice(b"\r\n");
        let mut h = Harness::new(crlf());
        h.connect();
        h.feed_chunked(&line, chunk);
        assert_eq!(h.protocol.handler.lines.len(), 1, "chunk {chunk}");
        assert!(!h.is_closing());
        let mut long = vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 1];
        long.extend_from_slice(b"\r\nnext\r\n");
        h.feed_chunked(&long, chunk);
        assert_eq!(h.protocol.handler.lines.len(), 1, "chunk {chunk}");
        assert!(h.is_closing(), "chunk {chunk}");
    }
}

#[test]
fn unterminated_buffer_is_held_until_max_plus_delimiter_length() {
    // Twisted holds 16385 unterminated bytes with CRLF and drops at 16386.
    let mut h = Harness::new(crlf());
    h.connect();
    h.feed(&vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 1]);
    assert!(!h.is_closing());
    h.feed(b"x");
    assert!(h.is_closing());
    assert!(h.protocol.buffered().is_empty());

    let mut h = Harness::new(lenient());
    h.connect();
    h.feed(&vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 1]);
    assert!(!h.is_closing());
    h.feed(b"\r");
    assert!(h.is_closing());
}

#[test]
fn a_tolerant_handler_skips_the_rest_of_an_overlong_line_in_every_chunking() {
    let make = || {
        let handler = Script {
            tolerate_long: true,
            ..Script::default()
        };
        LineReceiver::with_config(handler, LineConfig::default().with_max_length(4))
    };
    let out =
        assert_same_for_every_chunking(make, b"ok\r\n0123456789\r\n1234\r\n12345\r\nlast\r\n");
    assert_eq!(text(&out.output), "<ok>!<1234>!<last>");
    let make_lenient = || {
        let handler = Script {
            tolerate_long: true,
            ..Script::default()
        };
        LineReceiver::with_config(handler, LineConfig::lenient().with_max_length(4))
    };
    let out = assert_same_for_every_chunking(make_lenient, b"0123456789\r\nab\n01234\r\0cd\r\n");
    assert_eq!(text(&out.output), "!<ab>!<cd>");
}

#[test]
fn overlong_input_never_grows_the_buffer_past_the_limit() {
    let handler = Script {
        tolerate_long: true,
        ..Script::default()
    };
    let mut h = Harness::new(LineReceiver::with_config(
        handler,
        LineConfig::default().with_max_length(100),
    ));
    h.connect();
    for _ in 0..1000 {
        h.feed(&[b'y'; 1000]);
        assert!(h.protocol.buffered().len() < 102);
    }
    h.feed(b"\r\nafter\r\n");
    assert_eq!(h.take_text(), "!<after>");
}

#[test]
fn raw_mode_switch_with_leftover_bytes_in_every_chunking() {
    let out =
        assert_same_for_every_chunking(crlf, b"hello\r\nraw\r\nRAW\r\nDATA#x\r\ny\r\nraw\r\nmore#");
    assert_eq!(text(&out.output), "<hello><raw>RAW\r\nDATA<x><y><raw>more");
}

#[test]
fn raw_mode_from_a_timer_delivers_the_buffered_partial_line() {
    let mut h = Harness::new(crlf());
    h.connect();
    h.feed(b"line\r\npart");
    h.transport()
        .call_later(Duration::from_secs(1), |p: &mut LineReceiver<Script>, t| {
            p.with_handler(t, |_, lines| lines.set_raw_mode())
        });
    h.advance(Duration::from_secs(2));
    assert!(h.protocol.is_raw_mode());
    h.feed(b"ial\r\n#back\r\n");
    assert_eq!(h.take_text(), "<line>partial\r\n<back>");
}

#[test]
fn extra_handed_back_from_a_timer_is_framed_before_later_bytes() {
    let mut h = Harness::new(crlf());
    h.connect();
    h.feed(b"raw\r\nxyz");
    h.transport()
        .call_later(Duration::ZERO, |p: &mut LineReceiver<Script>, t| {
            p.with_handler(t, |_, lines| lines.set_line_mode(b"given\r\nhalf"))
        });
    h.advance(Duration::from_secs(1));
    h.feed(b"-line\r\n");
    assert_eq!(h.take_text(), "<raw>xyz<given><half-line>");
}

#[test]
fn close_inside_a_callback_stops_delivery_in_every_chunking() {
    let out = assert_same_for_every_chunking(crlf, b"a\r\nquit\r\nb\r\n");
    assert_eq!(text(&out.output), "<a><quit>");
    assert_eq!(out.closing, Closing::Lose);
    // An abort drops unsent output, so only the lines seen can be compared.
    let input = b"a\r\nabort\r\nb\r\n";
    for chunk in 1..=input.len() {
        let mut h = Harness::new(crlf());
        h.connect();
        h.feed_chunked(input, chunk);
        assert_eq!(
            h.protocol.handler.lines,
            [&b"a"[..], b"abort"],
            "chunk {chunk}"
        );
        assert_eq!(h.closing(), Closing::Abort);
    }
    let out = assert_same_for_every_chunking(crlf, b"raw\r\n#quit\r\nb\r\n");
    assert_eq!(text(&out.output), "<raw><quit>");
}

#[test]
fn handler_is_reached_through_handles_and_timers_and_sees_connection_lost() {
    let mut h = Harness::new(crlf());
    h.connect();
    let handle = h.transport().handle();
    h.feed(b""); // the harness picks the inbox up after a callback
    call_handler(&handle, |s: &mut Script, lines| {
        s.lines.push(b"from a handle".to_vec());
        lines.send_line(b"pushed");
    })
    .unwrap();
    assert_eq!(h.run_inbox(), 1);
    assert_eq!(h.take_output(), b"pushed\r\n");
    h.feed(b"x\r\n");
    let mut lines = LineTransport {
        transport: h.transport(),
        config: &LineConfig::default(),
        control: &mut Control {
            mode: Mode::Line,
            extra: None,
        },
    };
    lines.call_handler_later(Duration::from_secs(2), |_: &mut Script, lines| {
        lines.send_line(b"late")
    });
    // The harness clock starts when the harness is made, a little before
    // the timer was set: leave a second of slack each way.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_output(), b"<x>");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.take_output(), b"late\r\n");
    assert_eq!(
        h.protocol.handler.lines,
        vec![b"from a handle".to_vec(), b"x".to_vec()]
    );
    h.disconnect(Reason::Done);
    assert_eq!(h.protocol.handler.lost, Some(Reason::Done));
}

#[test]
fn log_prefix_is_the_handler_name() {
    assert_eq!(crlf().log_prefix(), "Script");
}

#[test]
fn clear_line_buffer_returns_the_partial_line() {
    let mut h = Harness::new(crlf());
    h.connect();
    h.feed(b"a\r\nhalf");
    assert_eq!(h.protocol.clear_line_buffer(), b"half");
    h.feed(b"new\r\n");
    assert_eq!(h.take_text(), "<a><new>");
}

// Telnet filtering.

/// Every IAC form a client may send, with the expected data.
const TELNET_INPUT: &[u8] = b"\xff\xfd\x03\xff\xfb\x18he\xff\xfa\x18\x00xterm\xff\xff\xff\xf0llo\xff\xf1\r\nff:\xff\xff\r\n";

#[test]
fn telnet_commands_are_removed_at_every_split_and_iac_iac_is_ff() {
    let out = assert_same_for_every_chunking(lenient, TELNET_INPUT);
    // The first command shows the peer speaks telnet: DO BINARY, once.
    // DO SGA and WILL TTYPE are refused in their place: WONT SGA, DONT TTYPE.
    assert_eq!(
        out.output,
        b"\xff\xfd\x00\xff\xfc\x03\xff\xfe\x18<hello><ff:\xff>"
    );
    assert_eq!(out.closing, Closing::No);
}

#[test]
fn telnet_interrupt_closes_politely_after_earlier_lines() {
    let out = assert_same_for_every_chunking(lenient, b"one\r\ntw\xff\xf4o\r\nthree\r\n");
    // The interrupt is the first command: DO BINARY goes out before the close.
    assert_eq!(out.output, b"<one>\xff\xfd\x00");
    assert_eq!(out.closing, Closing::Lose);
}

#[test]
fn negotiations_are_refused_after_the_lines_before_them() {
    // DO TIMING-MARK (after a BRK, as telnet sends for Ctrl-\), WILL NAWS,
    // and WONT/DONT, which are already so and get no answer.
    let input = b"one\r\nt\xff\xf3\xff\xfd\x06wo\r\n\xff\xfb\x1f\xff\xfc\x06\xff\xfe\x01three\r\n";
    let out = assert_same_for_every_chunking(lenient, input);
    assert_eq!(
        out.output,
        b"<one>\xff\xfd\x00\xff\xfc\x06<two>\xff\xfe\x1f<three>".as_slice()
    );
    assert_eq!(out.closing, Closing::No);
}

#[test]
fn a_kept_connection_answers_the_timing_mark_after_ctrl_c() {
    // What telnet sends for Ctrl-C: IAC IP IAC DO TM. A handler that keeps
    // the connection gets its interrupt hook, then the answer goes out, so
    // the client stops discarding output.
    struct Stubborn;
    impl LineHandler for Stubborn {
        fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
            lines.send_line(line);
        }
        fn telnet_interrupt(&mut self, lines: &mut LineTransport<'_>) {
            lines.send_line(b"^C");
        }
    }
    let out = assert_same_for_every_chunking(
        || LineReceiver::with_config(Stubborn, LineConfig::lenient()),
        b"a\r\n\xff\xf4\xff\xfd\x06b\r\n",
    );
    assert_eq!(out.output, b"a\r\n\xff\xfd\x00^C\r\n\xff\xfc\x06b\r\n");
}

#[test]
fn ctrl_c_closes_before_the_timing_mark_is_answered() {
    // The default interrupt closes: nothing after IAC IP is read, and the
    // closing connection ends the client's wait for the answer.
    let out = assert_same_for_every_chunking(lenient, b"one\r\n\xff\xf4\xff\xfd\x06two\r\n");
    assert_eq!(out.output, b"<one>\xff\xfd\x00");
    assert_eq!(out.closing, Closing::Lose);
}

#[test]
fn a_handler_closing_on_a_line_sends_no_answer_after_it() {
    let out = assert_same_for_every_chunking(lenient, b"quit\r\n\xff\xfd\x06");
    assert_eq!(text(&out.output), "<quit>");
    assert_eq!(out.closing, Closing::Lose);
}

#[test]
fn without_telnet_filtering_iac_bytes_are_data() {
    let make =
        || LineReceiver::with_config(Script::default(), LineConfig::lenient().with_telnet(false));
    let out = assert_same_for_every_chunking(make, b"a\xff\xf4b\n");
    assert_eq!(out.output, b"<a\xff\xf4b>");
}

#[test]
fn utf8_typed_in_telnet_arrives_whole_and_does_not_interrupt() {
    // Debian's telnet, not yet binary, sends `добрый утро 日本 é` with 0x83
    // as IAC IP and 0x9C as IAC BRK (each with DO TIMING-MARK); once it has
    // answered our DO BINARY with WILL BINARY, lines come as typed, ended
    // by `\n`. Then a real Ctrl-C, after a complete character, closes.
    let mangled: &[u8] = b"\xd0\xb4\xd0\xbe\xd0\xb1\xd1\x80\xd1\x8b\xd0\xb9 \xd1\xff\xf4\xff\xfd\x06\xd1\x82\xd1\x80\xd0\xbe \xe6\x97\xa5\xe6\xff\xf3\xff\xfd\x06\xac \xc3\xa9\r\n";
    let binary: &[u8] = b"\xff\xfb\x00\xd1\x83\xe6\x9c\xac\n\xc3\xa9\xff\xf4\xff\xfd\x06";
    let out = assert_same_for_every_chunking(lenient, &[mangled, binary].concat());
    // The answers go out as the commands arrive, before the line ends: one
    // DO BINARY, a WONT TIMING-MARK for each timing mark.
    let mut expected = b"\xff\xfd\x00\xff\xfc\x06\xff\xfc\x06".to_vec();
    expected.extend_from_slice("<добрый утро 日本 é><у本>".as_bytes());
    assert_eq!(text(&out.output), text(&expected));
    assert_eq!(out.closing, Closing::Lose);
}

#[test]
fn telnet_interrupt_can_be_overridden() {
    struct Stubborn;
    impl LineHandler for Stubborn {
        fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
            lines.send_line(line);
        }
        fn telnet_interrupt(&mut self, lines: &mut LineTransport<'_>) {
            lines.send_line(b"^C");
        }
    }
    let out = assert_same_for_every_chunking(
        || LineReceiver::with_config(Stubborn, LineConfig::lenient()),
        b"a\xff\xf4b\n",
    );
    assert_eq!(out.output, b"\xff\xfd\x00^C\r\nab\r\n");
}

// Properties.

/// Feeds `input` cut at `cuts` (positions, any order) and returns the lines.
fn lines_of(make: impl Fn() -> LineReceiver<Script>, input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(0);
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut h = Harness::new(make());
    h.connect();
    for pair in cuts.windows(2) {
        h.feed(&input[pair[0]..pair[1]]);
    }
    std::mem::take(&mut h.protocol.handler.lines)
}

fn encode(lines: &[Vec<u8>], delimiter: &[u8]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().chain(delimiter))
        .copied()
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Lines over a small alphabet rich in delimiter bytes, with every
/// `first, second` pair that would end a line broken up.
fn arb_lines(first: u8, second: u8) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let byte = prop::sample::select(vec![b'a', b'b', b'\r', b'\n', 0u8, 0xff]);
    let line = prop::collection::vec(byte, 0..12).prop_map(move |mut l| {
        for i in 1..l.len() {
            if l[i - 1] == first && l[i] == second {
                l[i] = b'b';
            }
        }
        l
    });
    prop::collection::vec(line, 0..12)
}

/// Sends every line back with `send_line`.
struct SendBack;

impl LineHandler for SendBack {
    fn line_received(&mut self, line: &[u8], lines: &mut LineTransport<'_>) {
        lines.send_line(line);
    }
}

/// A piece of a scripted session: a line, or a raw section (entered with
/// the line `raw`, left with `#`).
#[derive(Debug, Clone)]
enum Piece {
    Line(Vec<u8>),
    Raw(Vec<u8>),
}

fn arb_session() -> impl Strategy<Value = Vec<Piece>> {
    let text = prop::collection::vec(prop::sample::select(vec![b'a', b'\r', b'\n', b'q']), 0..10);
    let piece = prop_oneof![
        text.clone()
            .prop_map(|t| Piece::Line(t.into_iter().filter(|&b| b != b'\n').collect())),
        text.prop_map(Piece::Raw),
    ];
    prop::collection::vec(piece, 0..10)
}

proptest! {
    #[test]
    fn send_line_then_framing_is_the_identity(lines in arb_lines(b'\r', b'\n'), chunk in 1usize..9) {
        let input = encode(&lines, CRLF);
        let mut h = Harness::new(LineReceiver::new(SendBack));
        h.connect();
        h.feed_chunked(&input, chunk);
        prop_assert_eq!(h.take_output(), input);
    }

    #[test]
    fn raw_switches_lose_and_repeat_nothing_in_any_chunking(session in arb_session(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for piece in &session {
            match piece {
                Piece::Line(l) => {
                    // Lines without CRLF, `raw` or `quit` inside.
                    let mut l = l.clone();
                    if l.last() == Some(&b'\r') || l == b"raw" || l == b"quit" || l == b"abort" {
                        l.push(b'a');
                    }
                    input.extend_from_slice(&l);
                    input.extend_from_slice(CRLF);
                    expected.push(b'<');
                    expected.extend_from_slice(&l);
                    expected.push(b'>');
                }
                Piece::Raw(r) => {
                    input.extend_from_slice(b"raw\r\n");
                    input.extend_from_slice(r);
                    input.push(b'#');
                    expected.extend_from_slice(b"<raw>");
                    expected.extend_from_slice(r);
                }
            }
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.extend([0, input.len()]);
        cuts.sort_unstable();
        let mut h = Harness::new(crlf());
        h.connect();
        for pair in cuts.windows(2) {
            h.feed(&input[pair[0]..pair[1]]);
        }
        prop_assert_eq!(text(&h.take_output()), text(&expected));
    }

    #[test]
    fn crlf_lines_survive_any_chunking(lines in arb_lines(b'\r', b'\n'), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        prop_assert!(lines.iter().all(|l| !contains(l, b"\r\n")));
        let input = encode(&lines, CRLF);
        prop_assert_eq!(&lines_of(crlf, &input, &cuts), &lines);
        let ones: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&lines_of(crlf, &input, &ones), &lines);
    }

    #[test]
    fn lenient_lines_survive_any_chunking(lines in arb_lines(b'\r', 0), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let lines: Vec<Vec<u8>> = lines
            .into_iter()
            .map(|l| l.into_iter().map(|b| if b == b'\n' { b'a' } else { b }).collect())
            .collect();
        prop_assert!(lines.iter().all(|l| !l.contains(&b'\n') && !contains(l, b"\r\0")));
        let plain = || LineReceiver::with_config(Script::default(), LineConfig::lenient().with_telnet(false));
        let input = encode(&lines, CRLF);
        prop_assert_eq!(&lines_of(plain, &input, &cuts), &lines);
        let ones: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&lines_of(plain, &input, &ones), &lines);
    }

    #[test]
    fn telnet_commands_anywhere_never_change_the_lines(
        lines in prop::collection::vec(prop::collection::vec(b'a'..=b'c', 0..10), 0..8),
        commands in prop::collection::vec((any::<usize>(), 0usize..4), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        const FORMS: [&[u8]; 4] = [b"\xff\xfd\x01", b"\xff\xfa\x18\x01\xff\xff\xff\xf0", b"\xff\xf1", b"\xff\xfb\xff"];
        let plain = encode(&lines, CRLF);
        // Insert at positions of the plain text, last first, so that no
        // command lands inside another.
        let mut places: Vec<(usize, usize)> = commands.iter().map(|&(at, f)| (at % (plain.len() + 1), f)).collect();
        places.sort_unstable();
        let mut input = plain.clone();
        for &(at, form) in places.iter().rev() {
            input.splice(at..at, FORMS[form].iter().copied());
        }
        prop_assert_eq!(&lines_of(lenient, &input, &cuts), &lines);
    }
}

#[test]
fn a_pause_holds_the_rest_of_the_read_until_resumed_in_every_chunking() {
    let input: &[u8] = b"a\r\npause\r\nb\r\npause\r\nraw\r\nxy#c\r\npause\r\nd\r\n";
    let expected = "<a><pause><b><pause><raw>xy<c><pause><d>";
    for chunk in 1..=input.len() {
        let mut h = Harness::new(crlf());
        h.connect();
        let handle = h.transport().handle();
        h.feed_chunked(input, chunk);
        let mut resumes = 0;
        while h.is_paused() {
            // Nothing past the pause was delivered.
            let out = text(&h.take_output());
            assert!(out.is_empty() || out.ends_with("<pause>"), "{out:?}");
            h.transport().write(out.as_bytes());
            handle.resume_producing().unwrap();
            h.run_inbox();
            resumes += 1;
            assert!(resumes <= 3, "chunk {chunk}: paused for ever");
        }
        assert_eq!(resumes, 3, "chunk {chunk}");
        assert_eq!(text(&h.take_output()), expected, "chunk {chunk}");
        assert!(h.unread().is_empty() && h.protocol.buffered().is_empty());
    }
}
