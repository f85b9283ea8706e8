//! Boundary values between the pool's browser workers through one `SharedArrayBuffer`, when the
//! page is cross-origin isolated: each worker writes its messages for a ring neighbour into a
//! ring buffer of the shared memory and rings the neighbour's doorbell (`Atomics.notify`); a
//! worker waiting for a boundary sleeps on its own doorbell (`Atomics.wait`, which workers may
//! do) instead of going back to its event loop, so no message goes through the browser's message
//! routing. Without isolation the ring's `MessageChannel` ports carry them ([`super::web`]).
//!
//! The buffer, for a pool of `n` workers, in 32-bit words then bytes:
//!
//! ```text
//! word 0         the poison flag: set by the page when the pool is replaced or a worker lost
//! word 1 + w     worker w's doorbell, a counter every write to it (or read from it) bumps
//! outbox 2w + d  worker w's messages towards its next (d = 0) or previous (d = 1) neighbour:
//!                a head (bytes written, ever), a tail (bytes read, ever) and RING bytes, in
//!                which each record is its length, a more-to-come flag and the bytes (padded
//!                to a whole word)
//! ```
//!
//! An outbox holds many messages at once: a worker streams a boundary value for each of its
//! blocks every inference step, and its neighbour reads all that has come whenever it looks. A
//! message longer than [`MAX_RECORD`] goes as several records, in order; a full outbox waits
//! until its reader makes room, and meanwhile its writer keeps reading its own inboxes, so two
//! workers writing to each other never wait on each other.
//!
//! The ring's logic ([`Endpoint`]) is written against [`Memory`], so that it is tested natively
//! on a plain buffer.

use std::collections::VecDeque;

/// Bytes of each outbox's ring: 16 of a (64, 128) network's boundary messages, or 4 of a (64, 512) one's.
pub const RING: usize = 1 << 20;
/// The most bytes of one record (a longer message goes as several).
pub const MAX_RECORD: usize = RING / 4;
/// An outbox's control bytes before its ring: the head word, then the tail word on a cache line
/// of its own.
const CONTROL: usize = 128;
/// A record's header: length and more-to-come, a word each.
const HEADER: usize = 8;
/// The tail word's offset in an outbox's control bytes (the head word is at 0).
const TAIL: usize = 64;

/// A record's bytes in the ring: its header and `len` bytes, padded to a whole word.
fn record_size(len: usize) -> usize {
    HEADER + len.next_multiple_of(4)
}

fn header_bytes(n: usize) -> usize {
    ((1 + n) * 4).next_multiple_of(64)
}

fn outbox_offset(n: usize, outbox: usize) -> usize {
    header_bytes(n) + outbox * (CONTROL + RING)
}

/// The buffer's size for a pool of `n` workers.
pub fn buffer_len(n: usize) -> usize {
    outbox_offset(n, 2 * n)
}

/// The memory the exchange lives in: word-sized atomics and byte copies at byte offsets (every
/// offset the exchange uses for a word is a multiple of 4).
pub trait Memory {
    /// The word at byte offset `at`.
    fn load(&self, at: usize) -> u32;
    /// Sets the word at byte offset `at`.
    fn store(&self, at: usize, value: u32);
    /// Copies `bytes` in at byte offset `at`.
    fn write(&self, at: usize, bytes: &[u8]);
    /// Copies `into.len()` bytes out from byte offset `at`.
    fn read(&self, at: usize, into: &mut [u8]);
    /// Adds one to the word at `at` and wakes whoever waits on it.
    fn bump(&self, at: usize);
    /// Sleeps while the word at `at` is `seen` (at most `ms` milliseconds).
    fn wait(&self, at: usize, seen: u32, ms: f64);
}

/// One worker's end of the exchange.
pub struct Endpoint<M> {
    mem: M,
    me: usize,
    n: usize,
    /// Per direction (next, previous): messages still to write, with how much is written.
    out: [VecDeque<(Vec<u8>, usize)>; 2],
    /// Per inbox (from the previous worker's next outbox, from the next worker's previous one):
    /// the records of a message so far.
    partial: [Vec<u8>; 2],
}

impl<M: Memory> Endpoint<M> {
    /// Worker `me`'s end of an exchange of `n` workers in `mem` (of [`buffer_len`]`(n)` bytes
    /// at least).
    pub fn with_memory(mem: M, me: usize, n: usize, len: usize) -> Result<Self, String> {
        if n < 2 || me >= n {
            return Err(format!("worker {me} of a pool of {n}: a shared exchange needs 2 workers or more"));
        }
        if len < buffer_len(n) {
            return Err(format!("the shared exchange has {len} bytes; {n} workers need {}", buffer_len(n)));
        }
        Ok(Endpoint { mem, me, n, out: [VecDeque::new(), VecDeque::new()], partial: [Vec::new(), Vec::new()] })
    }

    fn doorbell_at(worker: usize) -> usize {
        4 * (1 + worker)
    }

    /// The next (`d = 0`) or the previous (`d = 1`) worker's index.
    fn neighbour(&self, d: usize) -> usize {
        if d == 0 {
            (self.me + 1) % self.n
        } else {
            (self.me + self.n - 1) % self.n
        }
    }

    /// The byte offset of position `pos` of outbox `k`'s ring.
    fn ring_at(&self, k: usize, pos: u32) -> usize {
        outbox_offset(self.n, k) + CONTROL + pos as usize % RING
    }

    /// Copies `bytes` into outbox `k`'s ring from position `pos`, across its end if need be.
    fn put(&self, k: usize, pos: u32, bytes: &[u8]) {
        let first = (RING - pos as usize % RING).min(bytes.len());
        self.mem.write(self.ring_at(k, pos), &bytes[..first]);
        if first < bytes.len() {
            self.mem.write(self.ring_at(k, 0), &bytes[first..]);
        }
    }

    /// Copies bytes out of outbox `k`'s ring from position `pos`, across its end if need be.
    fn get(&self, k: usize, pos: u32, into: &mut [u8]) {
        let first = (RING - pos as usize % RING).min(into.len());
        self.mem.read(self.ring_at(k, pos), &mut into[..first]);
        if first < into.len() {
            self.mem.read(self.ring_at(k, 0), &mut into[first..]);
        }
    }

    /// Queues `message` for the next (`to_next`) or the previous neighbour.
    pub fn queue(&mut self, to_next: bool, message: Vec<u8>) {
        self.out[usize::from(!to_next)].push_back((message, 0));
    }

    /// True while queued messages are not all written.
    pub fn pending(&self) -> bool {
        self.out.iter().any(|q| !q.is_empty())
    }

    /// Writes what fits into the outboxes; whether anything was written.
    pub fn send(&mut self) -> bool {
        let mut wrote = false;
        for d in 0..2 {
            let k = 2 * self.me + d;
            let base = outbox_offset(self.n, k);
            let to = self.neighbour(d);
            let mut head = self.mem.load(base);
            let tail = self.mem.load(base + TAIL);
            let before = head;
            while let Some((message, done)) = self.out[d].front() {
                let (start, end) = (*done, (*done + MAX_RECORD).min(message.len()));
                let size = record_size(end - start);
                if RING - head.wrapping_sub(tail) as usize >= size {
                    let more = end < message.len();
                    let mut header = [0u8; HEADER];
                    header[..4].copy_from_slice(&((end - start) as u32).to_le_bytes());
                    header[4..].copy_from_slice(&u32::from(more).to_le_bytes());
                    self.put(k, head, &header);
                    self.put(k, head.wrapping_add(HEADER as u32), &message[start..end]);
                    head = head.wrapping_add(size as u32);
                    if more {
                        if let Some(front) = self.out[d].front_mut() {
                            front.1 = end;
                        }
                    } else {
                        self.out[d].pop_front();
                    }
                } else {
                    break;
                }
            }
            if head != before {
                // The records are in place before the reader can see the new head.
                self.mem.store(base, head);
                self.mem.bump(Self::doorbell_at(to));
                wrote = true;
            }
        }
        wrote
    }

    /// Reads everything in the inboxes; the messages completed by it, in order per inbox.
    pub fn receive(&mut self) -> Vec<Vec<u8>> {
        let mut complete = Vec::new();
        for (d, sender) in [self.neighbour(1), self.neighbour(0)].into_iter().enumerate() {
            // The previous worker's "next" outbox, the next worker's "previous" one.
            let k = 2 * sender + d;
            let base = outbox_offset(self.n, k);
            let head = self.mem.load(base);
            let mut tail = self.mem.load(base + TAIL);
            let before = tail;
            // A record that is not wholly between tail and head (never, unless the memory was
            // written by something else) ends the reading: nothing past it is trusted.
            while (HEADER..=RING).contains(&(head.wrapping_sub(tail) as usize)) {
                let mut words = [0u8; HEADER];
                self.get(k, tail, &mut words);
                let len = u32::from_le_bytes([words[0], words[1], words[2], words[3]]) as usize;
                let more = words[4..].iter().any(|&b| b != 0);
                if len > MAX_RECORD || record_size(len) > head.wrapping_sub(tail) as usize {
                    break;
                }
                // Straight from shared memory into the message (no record-sized copy in between).
                let mut part = std::mem::take(&mut self.partial[d]);
                let old = part.len();
                part.resize(old + len, 0);
                self.get(k, tail.wrapping_add(HEADER as u32), &mut part[old..]);
                tail = tail.wrapping_add(record_size(len) as u32);
                if more {
                    self.partial[d] = part;
                } else {
                    complete.push(part);
                }
            }
            if tail != before {
                self.mem.store(base + TAIL, tail);
                // A writer waiting for room sleeps on its doorbell.
                self.mem.bump(Self::doorbell_at(sender));
            }
        }
        complete
    }

    /// This worker's doorbell now (to wait on).
    pub fn doorbell(&self) -> u32 {
        self.mem.load(Self::doorbell_at(self.me))
    }

    /// Sleeps until the doorbell moves from `seen` (or `ms` pass).
    pub fn wait(&self, seen: u32, ms: f64) {
        self.mem.wait(Self::doorbell_at(self.me), seen, ms);
    }

    /// True once the page has given this exchange up.
    pub fn poisoned(&self) -> bool {
        self.mem.load(0) != 0
    }
}

/// An exchange in ordinary memory, for one thread (the ring's tests).
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub struct Plain(pub std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

#[cfg(test)]
impl Plain {
    /// Zeroed memory for `n` workers.
    pub fn for_workers(n: usize) -> Plain {
        Plain(std::rc::Rc::new(std::cell::RefCell::new(vec![0; buffer_len(n)])))
    }
}

#[cfg(test)]
impl Memory for Plain {
    fn load(&self, at: usize) -> u32 {
        let b = self.0.borrow();
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    fn store(&self, at: usize, value: u32) {
        self.0.borrow_mut()[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn write(&self, at: usize, bytes: &[u8]) {
        self.0.borrow_mut()[at..at + bytes.len()].copy_from_slice(bytes);
    }
    fn read(&self, at: usize, into: &mut [u8]) {
        into.copy_from_slice(&self.0.borrow()[at..at + into.len()]);
    }
    fn bump(&self, at: usize) {
        let v = self.load(at);
        self.store(at, v.wrapping_add(1));
    }
    fn wait(&self, _at: usize, _seen: u32, _ms: f64) {}
}

#[cfg(target_arch = "wasm32")]
pub use js::{create, poison, Mailbox};

#[cfg(target_arch = "wasm32")]
mod js {
    use super::{buffer_len, Endpoint, Memory};
    use js_sys::{Atomics, Int32Array, SharedArrayBuffer, Uint8Array};

    /// A `SharedArrayBuffer` seen as words (through `Atomics`) and as bytes.
    pub struct Shared {
        ints: Int32Array,
        bytes: Uint8Array,
    }

    impl Memory for Shared {
        fn load(&self, at: usize) -> u32 {
            Atomics::load(&self.ints, (at / 4) as u32).unwrap_or(0) as u32
        }
        fn store(&self, at: usize, value: u32) {
            let _ = Atomics::store(&self.ints, (at / 4) as u32, value as i32);
        }
        fn write(&self, at: usize, bytes: &[u8]) {
            self.bytes.subarray(at as u32, (at + bytes.len()) as u32).copy_from(bytes);
        }
        fn read(&self, at: usize, into: &mut [u8]) {
            self.bytes.subarray(at as u32, (at + into.len()) as u32).copy_to(into);
        }
        fn bump(&self, at: usize) {
            let _ = Atomics::add(&self.ints, (at / 4) as u32, 1);
            let _ = Atomics::notify(&self.ints, (at / 4) as u32);
        }
        fn wait(&self, at: usize, seen: u32, ms: f64) {
            let _ = Atomics::wait_with_timeout(&self.ints, (at / 4) as u32, seen as i32, ms);
        }
    }

    /// A worker's end of the page's shared exchange.
    pub type Mailbox = Endpoint<Shared>;

    impl Endpoint<Shared> {
        /// Worker `me`'s end of `buffer`, made for a pool of `n`.
        pub fn new(buffer: &SharedArrayBuffer, me: usize, n: usize) -> Result<Self, String> {
            let mem = Shared { ints: Int32Array::new(buffer), bytes: Uint8Array::new(buffer) };
            Endpoint::with_memory(mem, me, n, buffer.byte_length() as usize)
        }
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
        // The doorbells are words 1 … n, n the pool's size the buffer was made for.
        let n = buffer.byte_length() as usize / (2 * (super::CONTROL + super::RING));
        for w in 1..=n as u32 {
            let _ = Atomics::notify(&ints, w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message whose bytes say which it is (its first eight bytes are its sender and number,
    /// the rest follow from them), so that a lost, repeated, reordered or torn one shows.
    fn message(from: usize, seq: usize, len: usize) -> Vec<u8> {
        let mut m = Vec::with_capacity(8 + len);
        m.extend_from_slice(&(from as u32).to_le_bytes());
        m.extend_from_slice(&(seq as u32).to_le_bytes());
        m.extend((0..len).map(|i| (from * 131 + seq * 7 + i * 13 % 251) as u8));
        m
    }

    fn endpoints() -> (Endpoint<Plain>, Endpoint<Plain>) {
        let mem = Plain::for_workers(2);
        let len = buffer_len(2);
        let a = Endpoint::with_memory(mem.clone(), 0, 2, len).expect("worker 0");
        let b = Endpoint::with_memory(mem, 1, 2, len).expect("worker 1");
        (a, b)
    }

    #[test]
    fn many_messages_both_ways_arrive_whole_and_in_order_across_the_rings_end() {
        let (mut a, mut b) = endpoints();
        // Sizes that are not whole words, that wrap the ring at odd places, and longer than a record.
        let sizes = [32 * 1024 + 16, 3, 64 * 1024 + 21, MAX_RECORD + 5, 0, 2 * MAX_RECORD + 1, 777];
        let (mut sent_ab, mut sent_ba) = (Vec::new(), Vec::new());
        let (mut got_ab, mut got_ba) = (Vec::new(), Vec::new());
        for seq in 0..200 {
            let len = sizes[seq % sizes.len()];
            let (m, back) = (message(0, seq, len), message(1, seq, len + seq));
            a.queue(seq % 3 != 0, m.clone());
            b.queue(seq % 2 == 0, back.clone());
            sent_ab.push((seq % 3 != 0, m));
            sent_ba.push((seq % 2 == 0, back));
            a.send();
            b.send();
            // The reader looks now and then; messages wait in the ring (or the queue) meanwhile.
            if seq % 5 == 4 {
                got_ab.extend(b.receive());
                got_ba.extend(a.receive());
            }
        }
        while a.pending() || b.pending() {
            got_ab.extend(b.receive());
            got_ba.extend(a.receive());
            a.send();
            b.send();
        }
        got_ab.extend(b.receive());
        got_ba.extend(a.receive());
        // With two workers both directions reach the same neighbour; per direction the order holds.
        let seq = |m: &Vec<u8>| u32::from_le_bytes([m[4], m[5], m[6], m[7]]) as usize;
        for (sent, got) in [(sent_ab, got_ab), (sent_ba, got_ba)] {
            assert_eq!(got.len(), sent.len(), "messages lost or repeated");
            for dir in [true, false] {
                let want: Vec<usize> = sent.iter().filter(|s| s.0 == dir).map(|s| seq(&s.1)).collect();
                let have: Vec<usize> = got.iter().map(seq).filter(|k| sent[*k].0 == dir).collect();
                assert_eq!(have, want, "a direction's messages out of order");
            }
            for g in &got {
                assert!(*g == sent[seq(g)].1, "message {} torn ({} bytes)", seq(g), g.len());
            }
        }
    }

    #[test]
    fn a_full_outbox_waits_for_its_reader_and_overwrites_nothing() {
        let (mut a, mut b) = endpoints();
        let big = |seq| message(0, seq, RING / 3);
        for seq in 0..6 {
            a.queue(true, big(seq));
        }
        a.send();
        assert!(a.pending(), "a ring of {RING} bytes took six messages of {}", RING / 3);
        let first = b.receive();
        assert!(first == vec![big(0), big(1)], "what fitted, whole and in order");
        a.send();
        let mut rest = b.receive();
        a.send();
        rest.extend(b.receive());
        a.send();
        rest.extend(b.receive());
        assert!(!a.pending());
        assert!(rest == (2..6).map(big).collect::<Vec<_>>(), "the rest, whole and in order");
    }

    #[test]
    fn a_ring_read_from_the_wrong_place_is_caught() {
        // The check above can fail: a reader that skips its tail one word on reads torn messages.
        let (mut a, mut b) = endpoints();
        a.queue(true, message(0, 1, 100));
        a.queue(true, message(0, 2, 100));
        a.send();
        let base = outbox_offset(2, 0);
        let tail = b.mem.load(base + TAIL);
        b.mem.store(base + TAIL, tail + 4);
        let got = b.receive();
        assert!(got != vec![message(0, 1, 100), message(0, 2, 100)], "a planted misread went unseen");
    }
}
