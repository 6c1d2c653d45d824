//! Histograms as text: HdrHistogram's V2 compressed encoding in base64 (the
//! form interval logs use), so that a JSON report carries its histograms
//! and `spindle load merge` can add them rather than average percentiles.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::{Counter, Histogram};

/// How the JSON names the encoding of its histograms.
pub const ENCODING: &str = "HdrHistogram V2 compressed, base64; values in nanoseconds";

/// `h` as base64 text.
pub fn encode<T: Counter>(h: &Histogram<T>) -> String {
    let mut bytes = Vec::new();
    // Serialising into memory fails only on a histogram that cannot be
    // encoded, which ours (bounded, non-negative counts) never are.
    match V2DeflateSerializer::new().serialize(h, &mut bytes) {
        Ok(_) => STANDARD.encode(&bytes),
        Err(_) => String::new(),
    }
}

/// A histogram from [`encode`]'s text; `what` names it in the error.
pub fn decode<T: Counter>(text: &str, what: &str) -> Result<Histogram<T>, String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("{what}: not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("{what}: not an HdrHistogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_the_round_trip() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in [1_000u64, 20_000, 20_001, 5_000_000_000] {
            h.record(v).unwrap();
        }
        let text = encode(&h);
        assert!(text.starts_with("HISTF"), "{text}");
        let back: Histogram<u64> = decode(&text, "latency").unwrap();
        assert_eq!(back, h);
        assert!(
            decode::<u64>("%%%", "latency")
                .unwrap_err()
                .contains("latency")
        );
        assert!(
            decode::<u64>("aGVsbG8=", "x")
                .unwrap_err()
                .contains("HdrHistogram")
        );
    }
}
