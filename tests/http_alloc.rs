//! The HTTP hot path allocates nothing per request: a counting allocator
//! watches 1,000 keep-alive requests through one channel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use spindle::http::SiteConfig;
use spindle::protocols::web;
use spindle::testing::{test_host, test_peer};
use spindle::{ConnInfo, Protocol, Transport};

/// Counts allocations made by threads that asked to be watched.
struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn keep_alive_requests_allocate_only_what_the_test_takes() {
    let site = web::site(SiteConfig::default());
    let mut channel = site.channel();
    let info = ConnInfo {
        peer: test_peer(),
        host: test_host(),
        session: 0,
    };
    let mut t = Transport::new(info, 16);
    channel.connection_made(&mut t);
    let request =
        b"GET /some/path HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n";
    // Warm up: buffers reach their size, the Date cache fills.
    for _ in 0..10 {
        channel.data_received(request, &mut t);
        assert!(t.take_output().ends_with(b"\n"));
    }
    const REQUESTS: u64 = 1000;
    WATCHING.with(|w| w.set(true));
    for _ in 0..REQUESTS {
        // The output piles up in the transport (the engine would send and
        // clear it in place); growing it costs about log2(total) reallocations.
        channel.data_received(request, &mut t);
    }
    WATCHING.with(|w| w.set(false));
    let allocations = COUNT.with(Cell::get);
    let out = t.take_output();
    let responses = out
        .windows(16)
        .filter(|w| w == b"HTTP/1.1 200 OK\r")
        .count() as u64;
    assert_eq!(responses, REQUESTS);
    assert!(!t.is_disconnecting());
    // log2 of the output's growth, plus a little slack: the Date cache
    // reformats when the second turns, the keep-alive timer is re-armed now
    // and then. One allocation per request would be 1000.
    assert!(
        allocations <= 40,
        "{allocations} allocations for {REQUESTS} requests"
    );
}
