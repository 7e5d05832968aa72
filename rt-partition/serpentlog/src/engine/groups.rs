//! Consumer groups' committed offsets, kept in the region's group area.
//!
//! ```text
//! group slot g (slot_bytes = 72 + partitions × 48):
//!   name record: crc32 u32 | name length u32 | name (64 bytes, zero padded)
//!   then per partition p (global index): copy 0 | copy 1, each 24 bytes:
//!     sequence u64 | offset u64 | crc32 u32 | 0 u32
//! ```
//! The name record's CRC covers the slot number, the length and the name; a copy's CRC
//! covers the slot, the partition, the sequence and the offset, so bytes read at the
//! wrong place never check. A commit writes the copy that does not hold the current value,
//! with the next sequence: a write cut short leaves that copy invalid and the other one
//! (the previous value) wins. Groups are never removed, so a slot's name is written once,
//! before the group's first commit.

use alloc::string::String;
use alloc::vec::Vec;

use super::bytes::{get_u32, get_u64, put, zero};
use super::layout::{COMMIT_COPY_BYTES, GROUP_NAME_RECORD_BYTES, MAX_GROUP_NAME_BYTES};
use crate::ErrorCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Commit {
    offset: u64,
    sequence: u64,
    copy: usize,
}

struct Group {
    name: String,
    /// Per global partition.
    commits: Vec<Option<Commit>>,
}

pub(crate) struct GroupTable<'a> {
    area: &'a mut [u8],
    slot_bytes: usize,
    partitions: usize,
    slots: Vec<Option<Group>>,
}

/// What recovering the group area found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupRecovery {
    pub groups: u64,
    pub commits: u64,
}

fn name_crc(slot: usize, name: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(slot as u32).to_le_bytes());
    hasher.update(&(name.len() as u32).to_le_bytes());
    hasher.update(name);
    hasher.finalize()
}

fn commit_crc(slot: usize, partition: usize, sequence: u64, offset: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(slot as u32).to_le_bytes());
    hasher.update(&(partition as u32).to_le_bytes());
    hasher.update(&sequence.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.finalize()
}

impl<'a> GroupTable<'a> {
    fn slot_start(&self, slot: usize) -> usize {
        slot.saturating_mul(self.slot_bytes)
    }

    fn copy_at(&self, slot: usize, partition: usize, copy: usize) -> usize {
        self.slot_start(slot).saturating_add(GROUP_NAME_RECORD_BYTES).saturating_add(
            partition.saturating_mul(2).saturating_add(copy).saturating_mul(COMMIT_COPY_BYTES),
        )
    }

    pub(crate) fn format(area: &mut [u8]) {
        zero(area, 0, area.len());
    }

    /// Reads every slot's name and both copies of each committed offset.
    pub(crate) fn recover(
        area: &'a mut [u8],
        slot_bytes: usize,
        groups: usize,
        partitions: usize,
    ) -> (Self, GroupRecovery) {
        let mut table = GroupTable { area, slot_bytes, partitions, slots: Vec::with_capacity(groups) };
        let mut report = GroupRecovery::default();
        for slot in 0..groups {
            let group = table.read_group(slot);
            // A name found twice (only possible in a damaged region) keeps its first slot.
            let group = group.filter(|g| !table.slots.iter().flatten().any(|other| other.name == g.name));
            if let Some(group) = &group {
                report.groups += 1;
                report.commits += group.commits.iter().flatten().count() as u64;
            }
            table.slots.push(group);
        }
        (table, report)
    }

    fn read_group(&self, slot: usize) -> Option<Group> {
        let start = self.slot_start(slot);
        let crc = get_u32(self.area, start)?;
        let len = get_u32(self.area, start.saturating_add(4))? as usize;
        if len == 0 || len > MAX_GROUP_NAME_BYTES {
            return None;
        }
        let name_start = start.saturating_add(8);
        let name = self.area.get(name_start..name_start.saturating_add(len))?;
        if crc != name_crc(slot, name) {
            return None;
        }
        let name = String::from(core::str::from_utf8(name).ok()?);
        let commits = (0..self.partitions).map(|p| self.read_commit(slot, p)).collect();
        Some(Group { name, commits })
    }

    fn read_copy(&self, slot: usize, partition: usize, copy: usize) -> Option<Commit> {
        let at = self.copy_at(slot, partition, copy);
        let sequence = get_u64(self.area, at)?;
        let offset = get_u64(self.area, at.saturating_add(8))?;
        let crc = get_u32(self.area, at.saturating_add(16))?;
        (sequence != 0 && crc == commit_crc(slot, partition, sequence, offset)).then_some(Commit {
            offset,
            sequence,
            copy,
        })
    }

    fn read_commit(&self, slot: usize, partition: usize) -> Option<Commit> {
        match (self.read_copy(slot, partition, 0), self.read_copy(slot, partition, 1)) {
            (Some(a), Some(b)) => Some(if b.sequence > a.sequence { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|g| g.as_ref().is_some_and(|g| g.name == name))
    }

    /// `group`'s committed offset in global partition `partition`.
    pub(crate) fn committed(&self, group: &str, partition: usize) -> Option<u64> {
        let slot = self.find(group)?;
        let commit = self.slots.get(slot)?.as_ref()?.commits.get(partition).copied().flatten()?;
        Some(commit.offset)
    }

    /// Persists `group`'s offset in global partition `partition` (registering the group in
    /// a free slot on its first commit).
    pub(crate) fn commit(&mut self, group: &str, partition: usize, offset: u64) -> Result<(), ErrorCode> {
        if group.is_empty() || group.len() > MAX_GROUP_NAME_BYTES {
            return Err(ErrorCode::BadRequest);
        }
        if partition >= self.partitions {
            return Err(ErrorCode::UnknownPartition);
        }
        let slot = match self.find(group) {
            Some(slot) => slot,
            None => self.register(group)?,
        };
        let current =
            self.slots.get(slot).and_then(|g| g.as_ref()).and_then(|g| g.commits.get(partition)).copied();
        let Some(current) = current else { return Err(ErrorCode::BadRequest) };
        let (copy, sequence) = match current {
            Some(c) => (1 - c.copy, c.sequence.saturating_add(1)),
            None => (0, 1),
        };
        let mut bytes = [0u8; COMMIT_COPY_BYTES];
        bytes[..8].copy_from_slice(&sequence.to_le_bytes());
        bytes[8..16].copy_from_slice(&offset.to_le_bytes());
        bytes[16..20].copy_from_slice(&commit_crc(slot, partition, sequence, offset).to_le_bytes());
        let at = self.copy_at(slot, partition, copy);
        put(self.area, at, &bytes).ok_or(ErrorCode::ResourceExhausted)?;
        if let Some(entry) =
            self.slots.get_mut(slot).and_then(|g| g.as_mut()).and_then(|g| g.commits.get_mut(partition))
        {
            *entry = Some(Commit { offset, sequence, copy });
        }
        Ok(())
    }

    fn register(&mut self, name: &str) -> Result<usize, ErrorCode> {
        let slot = self.slots.iter().position(Option::is_none).ok_or(ErrorCode::ResourceExhausted)?;
        let start = self.slot_start(slot);
        // The slot's copies may hold a damaged earlier group's bytes: clear them before the
        // name makes the slot valid.
        zero(self.area, start, self.slot_bytes);
        let mut record = [0u8; GROUP_NAME_RECORD_BYTES];
        record[..4].copy_from_slice(&name_crc(slot, name.as_bytes()).to_le_bytes());
        record[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
        put(&mut record, 8, name.as_bytes()).ok_or(ErrorCode::BadRequest)?;
        put(self.area, start, &record).ok_or(ErrorCode::ResourceExhausted)?;
        if let Some(place) = self.slots.get_mut(slot) {
            *place = Some(Group { name: String::from(name), commits: alloc::vec![None; self.partitions] });
        }
        Ok(slot)
    }

    pub(crate) fn group_count(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}
