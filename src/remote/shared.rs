//! Boundary values between the pool's browser workers through one `SharedArrayBuffer`, when the
//! page is cross-origin isolated: each worker writes its messages for a ring neighbour into a
//! slot of the buffer and rings the neighbour's doorbell (`Atomics.notify`); a worker waiting
//! for a boundary sleeps on its own doorbell (`Atomics.wait`, which workers may do) instead of
//! going back to its event loop, so no message goes through the browser's message routing.
//! Without isolation the ring's `MessageChannel` ports carry them ([`super::web`]).
//!
//! The buffer, for a pool of `n` workers, in 32-bit words then bytes:
//!
//! ```text
//! word 0         the poison flag: set by the page when the pool is replaced or a worker lost
//! word 1 + w     worker w's doorbell, a counter every write to it (or read from it) bumps
//! slot 2w + d    worker w's outbox towards its next (d = 0) or previous (d = 1) neighbour:
//!                state (0 empty, 1 full), length, more-to-come, then up to CHUNK bytes
//! ```
//!
//! A message longer than a chunk goes in several, in order; a full slot waits until its reader
//! empties it, and meanwhile its writer keeps reading its own inboxes, so two workers writing to
//! each other never wait on each other.

use js_sys::{Atomics, Int32Array, SharedArrayBuffer, Uint8Array};
use std::collections::VecDeque;

/// Bytes one slot carries at a time: a (64, 512) boundary's two matrices in one chunk.
pub const CHUNK: usize = 256 * 1024 + 1024;
/// A slot's control words before its bytes: state, length, more, unused.
const CONTROL: usize = 16;

fn header_bytes(n: usize) -> usize {
    ((1 + n) * 4).next_multiple_of(64)
}

fn slot_offset(n: usize, slot: usize) -> usize {
    header_bytes(n) + slot * (CONTROL + CHUNK)
}

/// The buffer's size for a pool of `n` workers.
pub fn buffer_len(n: usize) -> usize {
    slot_offset(n, 2 * n)
}

/// A new exchange for `n` workers (the page makes it and posts it to each worker).
pub fn create(n: usize) -> Result<SharedArrayBuffer, String> {
    let len = u32::try_from(buffer_len(n)).map_err(|_| format!("a pool of {n} workers is too large"))?;
    Ok(SharedArrayBuffer::new(len))
}

/// Tells every worker waiting on `buffer` to stop waiting: its pool is gone.
pub fn poison(buffer: &SharedArrayBuffer) {
    let ints = Int32Array::new(buffer);
    let _ = Atomics::store(&ints, 0, 1);
    for w in 1..ints.length() {
        let _ = Atomics::notify(&ints, w);
    }
}

/// One worker's end of the exchange.
pub struct Mailbox {
    ints: Int32Array,
    bytes: Uint8Array,
    me: usize,
    n: usize,
    /// Per direction (next, previous): messages still to write, with how much is written.
    out: [VecDeque<(Vec<u8>, usize)>; 2],
    /// Per inbox (from the previous worker's next slot, from the next worker's previous slot):
    /// the chunks of a message so far.
    partial: [Vec<u8>; 2],
}

impl Mailbox {
    /// Worker `me`'s end of `buffer`, made for a pool of `n`.
    pub fn new(buffer: &SharedArrayBuffer, me: usize, n: usize) -> Result<Self, String> {
        if n < 2 || me >= n {
            return Err(format!("worker {me} of a pool of {n}: a shared exchange needs 2 workers or more"));
        }
        if (buffer.byte_length() as usize) < buffer_len(n) {
            return Err(format!(
                "the shared exchange has {} bytes; {n} workers need {}",
                buffer.byte_length(),
                buffer_len(n)
            ));
        }
        Ok(Mailbox {
            ints: Int32Array::new(buffer),
            bytes: Uint8Array::new(buffer),
            me,
            n,
            out: [VecDeque::new(), VecDeque::new()],
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn word(&self, slot: usize, k: usize) -> u32 {
        (slot_offset(self.n, slot) / 4 + k) as u32
    }

    fn load(&self, at: u32) -> i32 {
        Atomics::load(&self.ints, at).unwrap_or(0)
    }

    fn ring(&self, worker: usize) {
        let _ = Atomics::add(&self.ints, 1 + worker as u32, 1);
        let _ = Atomics::notify(&self.ints, 1 + worker as u32);
    }

    /// Queues `message` for the next (`to_next`) or the previous neighbour.
    pub fn queue(&mut self, to_next: bool, message: Vec<u8>) {
        self.out[usize::from(!to_next)].push_back((message, 0));
    }

    /// True while queued messages are not all written.
    pub fn pending(&self) -> bool {
        self.out.iter().any(|q| !q.is_empty())
    }

    /// Writes what fits into empty slots; whether anything was written.
    pub fn send(&mut self) -> bool {
        let mut wrote = false;
        for d in 0..2 {
            let slot = 2 * self.me + d;
            let to = if d == 0 { (self.me + 1) % self.n } else { (self.me + self.n - 1) % self.n };
            while let Some((message, done)) = self.out[d].front() {
                if self.load(self.word(slot, 0)) != 0 {
                    break;
                }
                let (start, end) = (*done, (*done + CHUNK).min(message.len()));
                let at = (slot_offset(self.n, slot) + CONTROL) as u32;
                self.bytes.subarray(at, at + (end - start) as u32).copy_from(&message[start..end]);
                let more = end < message.len();
                let _ = Atomics::store(&self.ints, self.word(slot, 1), (end - start) as i32);
                let _ = Atomics::store(&self.ints, self.word(slot, 2), i32::from(more));
                let _ = Atomics::store(&self.ints, self.word(slot, 0), 1);
                self.ring(to);
                wrote = true;
                if more {
                    if let Some(front) = self.out[d].front_mut() {
                        front.1 = end;
                    }
                } else {
                    self.out[d].pop_front();
                }
            }
        }
        wrote
    }

    /// Reads every full inbox; the messages completed by it, in order per inbox.
    pub fn receive(&mut self) -> Vec<Vec<u8>> {
        let mut complete = Vec::new();
        let from = [(self.me + self.n - 1) % self.n, (self.me + 1) % self.n];
        for (k, &sender) in from.iter().enumerate() {
            // The previous worker's "next" slot, the next worker's "previous" slot.
            let slot = 2 * sender + k;
            while self.load(self.word(slot, 0)) == 1 {
                let len = self.load(self.word(slot, 1)).max(0) as usize;
                let more = self.load(self.word(slot, 2)) != 0;
                let at = (slot_offset(self.n, slot) + CONTROL) as u32;
                // Straight from shared memory into the message (no chunk-sized copy in between).
                let (part, len) = (&mut self.partial[k], len.min(CHUNK));
                let old = part.len();
                part.resize(old + len, 0);
                self.bytes.subarray(at, at + len as u32).copy_to(&mut part[old..]);
                let _ = Atomics::store(&self.ints, self.word(slot, 0), 0);
                self.ring(sender);
                if !more {
                    complete.push(std::mem::take(&mut self.partial[k]));
                }
            }
        }
        complete
    }

    /// This worker's doorbell now (to wait on).
    pub fn doorbell(&self) -> i32 {
        self.load(1 + self.me as u32)
    }

    /// Sleeps until the doorbell moves from `seen` (or `ms` pass).
    pub fn wait(&self, seen: i32, ms: f64) {
        let _ = Atomics::wait_with_timeout(&self.ints, 1 + self.me as u32, seen, ms);
    }

    /// True once the page has given this exchange up.
    pub fn poisoned(&self) -> bool {
        self.load(0) != 0
    }
}
