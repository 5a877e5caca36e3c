//! The layout of the two log tables, both keyed `<queue id bytes> 0x00 <seq u64 BE>` so a
//! queue's records are one ordered key range:
//!
//! ```text
//! delivery:      key → postcard (rows: u64, envelope)          rows first: counted
//!                                                               without decoding rows
//! dead-letters:  key → postcard (envelope, error, attempts, first/last failure ms)
//! ```

use serde::{Deserialize, Serialize};

use crate::{DeliveryServiceError, Envelope, QueueId};

const SEPARATOR: u8 = 0;

/// The key of entry `seq` of `queue`.
pub(crate) fn key(queue: &QueueId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(queue.as_str().len() + 9);
    key.extend_from_slice(queue.as_str().as_bytes());
    key.push(SEPARATOR);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The prefix every key of `queue` starts with (and no other queue's).
pub(crate) fn prefix(queue: &QueueId) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(queue.as_str().len() + 1);
    prefix.extend_from_slice(queue.as_str().as_bytes());
    prefix.push(SEPARATOR);
    prefix
}

pub(crate) fn parse_key(key: &[u8]) -> Result<(QueueId, u64), DeliveryServiceError> {
    let corrupt = |reason: &str| DeliveryServiceError::Corrupt {
        what: "key",
        reason: reason.to_owned(),
    };
    let split = key
        .len()
        .checked_sub(9)
        .filter(|at| key[*at] == SEPARATOR)
        .ok_or_else(|| corrupt("no separator"))?;
    let id = std::str::from_utf8(&key[..split]).map_err(|_| corrupt("queue id not UTF-8"))?;
    let queue = QueueId::new(id).map_err(|_| corrupt("invalid queue id"))?;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&key[split + 1..]);
    Ok((queue, u64::from_be_bytes(seq)))
}

#[derive(Serialize)]
struct EntryRef<'a> {
    rows: u64,
    envelope: &'a Envelope,
}

#[derive(Deserialize)]
struct Entry {
    #[allow(dead_code)] // Read alone by `entry_rows`.
    rows: u64,
    envelope: Envelope,
}

pub(crate) fn encode_entry(envelope: &Envelope) -> Result<Vec<u8>, DeliveryServiceError> {
    let entry = EntryRef {
        rows: envelope.len() as u64,
        envelope,
    };
    postcard::to_allocvec(&entry).map_err(|e| corrupt("entry", e))
}

/// The number of rows of an encoded entry, without decoding them.
pub(crate) fn entry_rows(value: &[u8]) -> Result<u64, DeliveryServiceError> {
    postcard::take_from_bytes::<u64>(value)
        .map(|(rows, _)| rows)
        .map_err(|e| corrupt("entry", e))
}

pub(crate) fn decode_entry(value: &[u8]) -> Result<Envelope, DeliveryServiceError> {
    postcard::from_bytes::<Entry>(value)
        .map(|entry| entry.envelope)
        .map_err(|e| corrupt("entry", e))
}

/// A batch that failed for good, as the dead-letter table keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeadLetterRecord {
    pub envelope: Envelope,
    pub error: String,
    pub attempts: u32,
    pub first_failure_ms: u64,
    pub last_failure_ms: u64,
}

pub(crate) fn encode_dead_letter(
    record: &DeadLetterRecord,
) -> Result<Vec<u8>, DeliveryServiceError> {
    postcard::to_allocvec(record).map_err(|e| corrupt("dead letter", e))
}

pub(crate) fn decode_dead_letter(value: &[u8]) -> Result<DeadLetterRecord, DeliveryServiceError> {
    postcard::from_bytes(value).map_err(|e| corrupt("dead letter", e))
}

fn corrupt(what: &'static str, err: postcard::Error) -> DeliveryServiceError {
    DeliveryServiceError::Corrupt {
        what,
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Row, RowMeta};

    fn envelope(rows: usize) -> Envelope {
        Envelope {
            columns: vec!["a".into()],
            rows: (0..rows)
                .map(|i| Row {
                    id: format!("r{i}"),
                    payload: format!("{{\"a\":{i}}}").into_bytes(),
                    json: true,
                    meta: RowMeta::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn keys_round_trip_and_sort_by_queue_then_seq() {
        let q = QueueId::new("rule/r1/0").expect("id");
        let k = key(&q, 258);
        assert_eq!(parse_key(&k).expect("parse"), (q.clone(), 258));
        assert!(k.starts_with(&prefix(&q)));
        assert!(key(&q, 255) < key(&q, 256));
        // "rule/r1/0" and "rule/r1/01" never share a prefix.
        let longer = QueueId::new("rule/r1/01").expect("id");
        assert!(!key(&longer, 0).starts_with(&prefix(&q)));
        assert!(parse_key(b"short").is_err());
        assert!(QueueId::new("a\0b").is_err());
        assert!(QueueId::new("").is_err());
    }

    #[test]
    fn entries_report_rows_without_decoding() {
        let e = envelope(3);
        let bytes = encode_entry(&e).expect("encode");
        assert_eq!(entry_rows(&bytes).expect("rows"), 3);
        assert_eq!(decode_entry(&bytes).expect("decode"), e);
        assert!(decode_entry(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn entries_written_with_payloads_as_u8_sequences_still_decode() {
        // Before payloads were serialised as byte strings (serde_bytes), postcard wrote
        // them as sequences of u8: queues written then must read the same.
        #[derive(Serialize)]
        struct OldRow<'a> {
            id: &'a str,
            payload: &'a Vec<u8>,
            json: bool,
            meta: &'a RowMeta,
        }
        #[derive(Serialize)]
        struct OldEntry<'a> {
            rows: u64,
            envelope: (&'a [String], Vec<OldRow<'a>>),
        }
        let e = envelope(3);
        let old = OldEntry {
            rows: 3,
            envelope: (
                &e.columns,
                e.rows
                    .iter()
                    .map(|r| OldRow {
                        id: &r.id,
                        payload: &r.payload,
                        json: r.json,
                        meta: &r.meta,
                    })
                    .collect(),
            ),
        };
        let bytes = postcard::to_allocvec(&old).expect("old encoding");
        assert_eq!(bytes, encode_entry(&e).expect("encode"));
        assert_eq!(decode_entry(&bytes).expect("decode"), e);
    }
}
