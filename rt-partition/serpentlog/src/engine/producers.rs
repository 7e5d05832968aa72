//! Idempotent producers: per (producer id, partition) the last batch appended, so a
//! retried batch is acknowledged again instead of appended twice.
//!
//! The table is bounded (`max_producers` entries). When a new pair needs room, the entry
//! used least recently (oldest broker time of its last batch, then oldest insertion) is
//! evicted; that producer's next batch is then accepted whatever its sequence, as from a
//! new producer. Nothing of the table is written to the region: recovery rebuilds it from
//! the batch headers still in the logs (so batches that retention dropped no longer
//! count either).

use alloc::collections::BTreeMap;

/// What the table says about an incoming batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// No entry: a new producer (or one evicted), any sequence starts it.
    New,
    /// The sequence continues the last batch.
    Next,
    /// The same batch as the last one appended, at this base offset.
    Duplicate(u64),
    /// Anything else: a gap, or a retry of an older batch.
    OutOfOrder,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LastBatch {
    first_sequence: u32,
    records: u32,
    base_offset: u64,
    /// (broker time of the batch, insertion tick): what eviction orders by.
    used: (u64, u64),
}

pub(crate) struct ProducerTable {
    capacity: usize,
    entries: BTreeMap<(u64, usize), LastBatch>,
    tick: u64,
}

impl ProducerTable {
    pub(crate) fn new(capacity: usize) -> Self {
        ProducerTable { capacity, entries: BTreeMap::new(), tick: 0 }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn check(&self, id: u64, partition: usize, sequence: u32, records: u32) -> SequenceCheck {
        let Some(last) = self.entries.get(&(id, partition)) else { return SequenceCheck::New };
        if sequence == last.first_sequence && records == last.records {
            SequenceCheck::Duplicate(last.base_offset)
        } else if sequence == last.first_sequence.wrapping_add(last.records) {
            SequenceCheck::Next
        } else {
            SequenceCheck::OutOfOrder
        }
    }

    /// Notes the batch just appended (or found by recovery), evicting the least recently
    /// used entry if a new pair needs room. With capacity 0 nothing is kept.
    pub(crate) fn record(
        &mut self,
        id: u64,
        partition: usize,
        sequence: u32,
        records: u32,
        base_offset: u64,
        now_ms: u64,
    ) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        let key = (id, partition);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self.entries.iter().min_by_key(|(_, last)| last.used).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        let used = (now_ms, self.tick);
        self.entries.insert(key, LastBatch { first_sequence: sequence, records, base_offset, used });
    }
}
