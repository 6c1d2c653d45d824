//! The HTTP channel's cost per request, in memory (no sockets): parse a
//! typical head with httparse, render the counter, write the response into
//! the transport. One request per callback, and ten pipelined in one.
//!
//! `cargo bench --bench http_channel`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spindle::http::SiteConfig;
use spindle::protocols::web;
use spindle::testing::{test_host, test_peer};
use spindle::{ConnInfo, Protocol, Transport};

/// What wrk sends.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

fn channel_and_transport() -> (spindle::http::HttpChannel, Transport) {
    let mut channel = web::site(SiteConfig::default()).channel();
    let info = ConnInfo {
        peer: test_peer(),
        host: test_host(),
        session: 0,
    };
    let mut t = Transport::new(info, 16);
    channel.connection_made(&mut t);
    (channel, t)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_channel");
    group.throughput(Throughput::Elements(1));
    let (mut channel, mut t) = channel_and_transport();
    // take_output hands the buffer over (one allocation per iteration that
    // the engine, which clears in place, does not pay).
    group.bench_function("one request per read", |b| {
        b.iter(|| {
            channel.data_received(REQUEST, &mut t);
            t.take_output()
        })
    });
    let pipelined = REQUEST.repeat(10);
    group.throughput(Throughput::Elements(10));
    let (mut channel, mut t) = channel_and_transport();
    group.bench_function("ten pipelined in one read", |b| {
        b.iter(|| {
            channel.data_received(&pipelined, &mut t);
            t.take_output()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
