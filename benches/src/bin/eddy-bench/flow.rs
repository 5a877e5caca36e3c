//! Message scenarios (p2p, fan-in, fan-out): publishers and subscribers, and the count of
//! every message — each subscriber keeps, per publisher it expects, a bitset of the
//! sequence numbers it received, so that at the end every expected delivery is either
//! received or counted lost, and duplicates or deliveries nobody sent are counted apart.

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use hdrhistogram::Histogram;
use rmqtt_codec::types::QoS;
use rmqtt_codec::v3::Packet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Decoder;

use crate::payload;
use crate::wire::{self, Conn, Error};

/// How many PUBLISHes a publisher encodes into one write at most.
const WRITE_BATCH: u64 = 64;

/// A publisher's counters, shared with the report.
#[derive(Debug, Default)]
pub struct Sent {
    /// PUBLISHes handed to the kernel.
    pub sent: AtomicU64,
    /// QoS 1/2: PUBLISHes the broker acknowledged (PUBACK / PUBCOMP).
    pub acked: AtomicU64,
}

pub struct Publisher {
    pub index: usize,
    pub topic: ByteString,
    pub qos: QoS,
    pub payload_len: usize,
    pub json: bool,
    /// Messages per second; 0 = as fast as the broker takes them.
    pub rate: f64,
    pub inflight: usize,
    pub start: Instant,
    pub stop: Arc<AtomicBool>,
    pub counters: Arc<Sent>,
}

impl Publisher {
    /// Sends until `stop`; for QoS 1/2 then waits (up to `drain`) for the last
    /// acknowledgements, and disconnects.
    pub async fn run(self, conn: Conn, drain: Duration) -> Result<(), Error> {
        let Conn {
            stream,
            mut codec,
            read_buf,
        } = conn;
        let (mut rd, mut wr) = stream.into_split();
        let window = Arc::new(Semaphore::new(self.inflight.max(1)));
        let (release_tx, mut release_rx) = mpsc::unbounded_channel::<NonZeroU16>();
        // Acknowledgements: each frees a slot of the in-flight window; a PUBREC asks the
        // writer for a PUBREL.
        let reader = {
            let (window, counters) = (window.clone(), self.counters.clone());
            let mut codec = codec.clone();
            let mut buf = read_buf;
            tokio::spawn(async move {
                loop {
                    while let Ok(Some((packet, _))) = codec.decode(&mut buf) {
                        match packet {
                            Packet::PublishAck { .. } | Packet::PublishComplete { .. } => {
                                counters.acked.fetch_add(1, Ordering::Relaxed);
                                window.add_permits(1);
                            }
                            Packet::PublishReceived { packet_id } => {
                                let _ = release_tx.send(packet_id);
                            }
                            _ => {}
                        }
                    }
                    if !matches!(rd.read_buf(&mut buf).await, Ok(n) if n > 0) {
                        // The connection is gone: a writer waiting for a slot gives up.
                        window.close();
                        return;
                    }
                }
            })
        };
        let publish_start = Instant::now();
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut body = Vec::with_capacity(self.payload_len);
        let mut seq = 0u64;
        let mut packet_id = 0u16;
        let acknowledged = self.qos != QoS::AtMostOnce;
        while !self.stop.load(Ordering::Relaxed) {
            // How many to send now: a batch at full speed, or what the rate says is due.
            let mut due = WRITE_BATCH;
            if self.rate > 0.0 {
                let owed = (publish_start.elapsed().as_secs_f64() * self.rate) as u64;
                due = owed.saturating_sub(seq).min(WRITE_BATCH);
                if due == 0 {
                    let next =
                        publish_start + Duration::from_secs_f64((seq + 1) as f64 / self.rate);
                    tokio::time::sleep_until(next.into()).await;
                    continue;
                }
            }
            if acknowledged {
                // At least one slot (answering PUBRECs while waiting), then whatever is free.
                tokio::select! {
                    permit = window.acquire() => permit?.forget(),
                    Some(id) = release_rx.recv() => {
                        wire::encode(&mut codec, &mut out, Packet::PublishRelease { packet_id: id })?;
                        wr.write_all(&out).await?;
                        out.clear();
                        continue;
                    }
                }
                let more = window.available_permits().min(due as usize - 1);
                if more > 0 {
                    window.acquire_many(more as u32).await?.forget();
                }
                due = 1 + more as u64;
            }
            while let Ok(id) = release_rx.try_recv() {
                wire::encode(
                    &mut codec,
                    &mut out,
                    Packet::PublishRelease { packet_id: id },
                )?;
            }
            let now_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            for _ in 0..due {
                payload::fill(
                    &mut body,
                    self.payload_len,
                    self.json,
                    now_ns,
                    payload::tag(self.index, seq),
                );
                let id = acknowledged.then(|| {
                    packet_id = packet_id.checked_add(1).unwrap_or(1);
                    NonZeroU16::new(packet_id).unwrap_or(NonZeroU16::MIN)
                });
                wire::encode_publish(
                    &mut codec,
                    &mut out,
                    &self.topic,
                    self.qos,
                    id,
                    Bytes::copy_from_slice(&body),
                )?;
                seq += 1;
            }
            wr.write_all(&out).await?;
            out.clear();
            self.counters.sent.fetch_add(due, Ordering::Relaxed);
        }
        // QoS 1/2: the last acknowledgements (and PUBRELs) before disconnecting.
        let deadline = Instant::now() + drain;
        while acknowledged
            && self.counters.acked.load(Ordering::Relaxed) < seq
            && Instant::now() < deadline
        {
            if let Ok(Some(id)) =
                tokio::time::timeout(Duration::from_millis(50), release_rx.recv()).await
            {
                wire::encode(
                    &mut codec,
                    &mut out,
                    Packet::PublishRelease { packet_id: id },
                )?;
                wr.write_all(&out).await?;
                out.clear();
            }
        }
        wire::encode(&mut codec, &mut out, Packet::Disconnect)?;
        let _ = wr.write_all(&out).await;
        reader.abort();
        Ok(())
    }
}

/// What one subscriber saw of one publisher.
#[derive(Debug, Default)]
pub struct Seen {
    bits: Vec<u64>,
    pub unique: u64,
    pub duplicates: u64,
}

impl Seen {
    fn record(&mut self, seq: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1 + word / 2, 0);
        }
        if self.bits[word] & (1 << bit) == 0 {
            self.bits[word] |= 1 << bit;
            self.unique += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Received sequence numbers at or above `sent`: deliveries nobody sent.
    pub fn beyond(&self, sent: u64) -> u64 {
        let mut n = 0;
        for (w, word) in self.bits.iter().enumerate() {
            for bit in 0..64 {
                if word & (1 << bit) != 0 && (w as u64) * 64 + bit >= sent {
                    n += 1;
                }
            }
        }
        n
    }
}

/// Everything one subscriber saw.
pub struct Received {
    pub by_publisher: HashMap<usize, Seen>,
    /// Payloads without our tag.
    pub foreign: u64,
    pub latency_ns: Histogram<u64>,
}

pub fn histogram() -> Histogram<u64> {
    // 1 ns to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Reads until `stop`, acknowledging QoS 1/2 deliveries, counting and timing each.
pub async fn subscribe_loop(
    conn: Conn,
    start: Instant,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
) -> Result<Received, Error> {
    let Conn {
        mut stream,
        mut codec,
        read_buf: mut buf,
    } = conn;
    let mut seen = Received {
        by_publisher: HashMap::new(),
        foreign: 0,
        latency_ns: histogram(),
    };
    let mut acks = BytesMut::new();
    loop {
        let mut count = 0;
        while let Some((packet, _)) = codec.decode(&mut buf)? {
            match packet {
                Packet::Publish(p) => {
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => wire::encode(
                            &mut codec,
                            &mut acks,
                            Packet::PublishAck {
                                packet_id: p.packet_id.unwrap_or(NonZeroU16::MIN),
                            },
                        )?,
                        QoS::ExactlyOnce => wire::encode(
                            &mut codec,
                            &mut acks,
                            Packet::PublishReceived {
                                packet_id: p.packet_id.unwrap_or(NonZeroU16::MIN),
                            },
                        )?,
                    }
                    let Some((sent_ns, tag)) = payload::read(&p.payload) else {
                        seen.foreign += 1;
                        continue;
                    };
                    let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let _ = seen.latency_ns.record(now.saturating_sub(sent_ns).max(1));
                    let (publisher, seq) = payload::untag(tag);
                    seen.by_publisher.entry(publisher).or_default().record(seq);
                    count += 1;
                }
                Packet::PublishRelease { packet_id } => {
                    wire::encode(&mut codec, &mut acks, Packet::PublishComplete { packet_id })?;
                }
                _ => {}
            }
        }
        live.fetch_add(count, Ordering::Relaxed);
        if !acks.is_empty() {
            stream.write_all(&acks).await?;
            acks.clear();
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(seen);
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) => return Err("the broker closed a subscriber's connection".into()),
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}
