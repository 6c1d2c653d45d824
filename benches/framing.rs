//! Framing throughput: line splitting with 80-byte lines fed in 1-byte,
//! 64-byte and 64 KiB chunks, and netstring and int32 decoding.
//!
//! `cargo bench --bench framing`; the results are in NOTES.md. Each
//! handler only counts what it gets, so the numbers are the framer's cost.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spindle::framing::line::{LineConfig, LineHandler, LineReceiver, LineTransport};
use spindle::framing::netstring;
use spindle::framing::prefixed::{self, Int32};
use spindle::framing::string::{StringHandler, StringTransport};
use spindle::{Addr, ConnInfo, Protocol, Transport};

/// One line of 78 bytes plus CRLF: 80 bytes on the wire.
const LINE: usize = 80;

struct CountLines(u64);

impl LineHandler for CountLines {
    fn line_received(&mut self, line: &[u8], _: &mut LineTransport<'_>) {
        self.0 += line.len() as u64 + 1;
    }
}

struct CountStrings(u64);

impl StringHandler for CountStrings {
    fn string_received(&mut self, data: &[u8], _: &mut StringTransport<'_>) {
        self.0 += data.len() as u64 + 1;
    }
}

fn transport() -> Transport {
    let addr = Addr::Tcp("127.0.0.1:1".parse().expect("a literal address"));
    Transport::new(
        ConnInfo {
            peer: addr.clone(),
            host: addr,
            session: 0,
        },
        16,
    )
}

/// Feeds `input` in `chunk`-byte pieces to a fresh protocol.
fn feed<P: Protocol>(protocol: &mut P, input: &[u8], chunk: usize) {
    let mut t = transport();
    for piece in input.chunks(chunk) {
        protocol.data_received(piece, &mut t);
    }
}

fn lines_input(total: usize) -> Vec<u8> {
    let mut line: Vec<u8> = (0..LINE - 2).map(|i| b'a' + (i % 26) as u8).collect();
    line.extend_from_slice(b"\r\n");
    line.iter()
        .copied()
        .cycle()
        .take(total / LINE * LINE)
        .collect()
}

fn bench_lines(c: &mut Criterion) {
    let mut group = c.benchmark_group("lines");
    for (chunk, total) in [(1, 64 << 10), (64, 1 << 20), (64 << 10, 4 << 20)] {
        let input = lines_input(total);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::new("crlf", chunk), &input, |b, input| {
            b.iter(|| {
                let mut p = LineReceiver::new(CountLines(0));
                feed(&mut p, input, chunk);
                black_box(p.handler.0)
            })
        });
        group.bench_with_input(
            BenchmarkId::new("lenient-telnet", chunk),
            &input,
            |b, input| {
                b.iter(|| {
                    let mut p = LineReceiver::with_config(CountLines(0), LineConfig::lenient());
                    feed(&mut p, input, chunk);
                    black_box(p.handler.0)
                })
            },
        );
    }
    group.finish();
}

fn bench_strings(c: &mut Criterion) {
    let payload = vec![b'x'; LINE - 4]; // 80-byte frames for both codecs
    let total = 4 << 20;
    let chunk = 64 << 10;
    let mut group = c.benchmark_group("strings");

    let frame = netstring::encode(&payload);
    let input: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(total / frame.len() * frame.len())
        .collect();
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_with_input(BenchmarkId::new("netstring", chunk), &input, |b, input| {
        b.iter(|| {
            let mut p = netstring::receiver(CountStrings(0));
            feed(&mut p, input, chunk);
            black_box(p.handler.0)
        })
    });

    let frame = Int32::default()
        .encode_to_vec(&payload)
        .expect("80 bytes fit");
    let input: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(total / frame.len() * frame.len())
        .collect();
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_with_input(BenchmarkId::new("int32", chunk), &input, |b, input| {
        b.iter(|| {
            let mut p = prefixed::int32(CountStrings(0));
            feed(&mut p, input, chunk);
            black_box(p.handler.0)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_lines, bench_strings
}
criterion_main!(benches);
