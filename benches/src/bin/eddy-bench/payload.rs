//! What every payload carries so that a subscriber can tell latency, sender and order:
//! the send time (nanoseconds since the run started), the publisher's index and its
//! sequence number. Binary by default (16 bytes, then padding); as a JSON object for runs
//! through the rule engine, whose SQL reads JSON.

/// The publisher index sits above this many bits of the sequence number.
const SEQ_BITS: u32 = 40;

pub fn tag(publisher: usize, seq: u64) -> u64 {
    ((publisher as u64) << SEQ_BITS) | seq
}

pub fn untag(tag: u64) -> (usize, u64) {
    ((tag >> SEQ_BITS) as usize, tag & ((1 << SEQ_BITS) - 1))
}

/// Writes `sent_ns` and `tag` into a payload of `len` bytes (at least 16 binary, or the
/// JSON object's own length).
pub fn fill(out: &mut Vec<u8>, len: usize, json: bool, sent_ns: u64, tag: u64) {
    out.clear();
    if json {
        // `temp` is for a rule's WHERE; the padding keeps the requested size.
        use std::io::Write as _;
        let _ = write!(out, "{{\"t\":{sent_ns},\"s\":{tag},\"temp\":35,\"pad\":\"");
        while out.len() + 2 < len {
            out.push(b'x');
        }
        out.extend_from_slice(b"\"}");
    } else {
        out.extend_from_slice(&sent_ns.to_be_bytes());
        out.extend_from_slice(&tag.to_be_bytes());
        out.resize(len.max(16), 0);
    }
}

/// (send time, tag) from a payload written by [`fill`], in either form.
pub fn read(payload: &[u8]) -> Option<(u64, u64)> {
    if payload.first() == Some(&b'{') {
        Some((
            json_number(payload, b"\"t\":")?,
            json_number(payload, b"\"s\":")?,
        ))
    } else if payload.len() >= 16 {
        let word = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[r]);
            u64::from_be_bytes(b)
        };
        Some((word(0..8), word(8..16)))
    } else {
        None
    }
}

/// The unsigned integer after `key` (rule engines may reorder or re-space the object).
fn json_number(payload: &[u8], key: &[u8]) -> Option<u64> {
    let at = payload.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = payload[at..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip() {
        let mut buf = Vec::new();
        for json in [false, true] {
            fill(&mut buf, 64, json, 123_456_789, tag(7, 42));
            assert_eq!(buf.len(), 64);
            let (t, s) = read(&buf).unwrap_or_default();
            assert_eq!((t, untag(s)), (123_456_789, (7, 42)));
        }
    }
}
