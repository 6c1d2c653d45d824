//! The `Date:` header, in IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
//! formatted once a second per thread rather than once per response.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub(crate) const HTTP_DATE_LEN: usize = 29;

thread_local! {
    /// The second last formatted on this thread, and its text.
    static CACHE: Cell<(u64, [u8; HTTP_DATE_LEN])> = const { Cell::new((u64::MAX, [0; HTTP_DATE_LEN])) };
}

/// Now, as an IMF-fixdate.
pub(crate) fn http_date_now() -> [u8; HTTP_DATE_LEN] {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let (cached, text) = cache.get();
        if cached == secs {
            return text;
        }
        let text = http_date(secs);
        cache.set((secs, text));
        text
    })
}

/// `secs` since the epoch as an IMF-fixdate.
pub(crate) fn http_date(secs: u64) -> [u8; HTTP_DATE_LEN] {
    let mut out = [b' '; HTTP_DATE_LEN];
    let formatted = i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    if let Some(text) = formatted
        && text.len() == HTTP_DATE_LEN
    {
        out.copy_from_slice(text.as_bytes());
    } else {
        // Past year 9999: say the epoch rather than send a malformed header.
        out.copy_from_slice(b"Thu, 01 Jan 1970 00:00:00 GMT");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_and_cache() {
        assert_eq!(&http_date(784111777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        let now = http_date_now();
        assert!(now.ends_with(b" GMT"));
        assert_eq!(now[3], b',');
    }
}
