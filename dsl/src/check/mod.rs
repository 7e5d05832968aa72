//! The whole-system checker. It works on the syntax tree, reports every broken rule with
//! its span, and is near-linear: every cross-partition rule sorts or hashes instead of
//! comparing pairs, so a table with thousands of partitions checks in milliseconds.

mod cache;
mod channels;
mod cores;
mod devices;
mod memory;
mod partitions;
mod platform;

use std::collections::HashMap;

use hallows_abi::table::MAX_CORES;

use crate::ast::*;
use crate::diagnostics::{did_you_mean, sort, Code, Diagnostic};
use crate::span::Span;

pub use channels::region_bytes as channel_region_bytes;
pub use partitions::way_block;
pub use platform::PlatformFacts;

/// A set of core ids (or cache ways) below 256.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits256([u64; 4]);

impl Bits256 {
    pub fn insert(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn contains(&self, i: u32) -> bool {
        self.0.get(i as usize / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn intersects(&self, other: &Bits256) -> bool {
        self.0.iter().zip(other.0.iter()).any(|(a, b)| a & b != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..256u32).filter(move |i| self.contains(*i))
    }
}

/// The ids of an index list below `limit`, in ascending order, deduplicated.
pub fn expand(list: &IndexList, limit: u64) -> Vec<u32> {
    let mut bits = Bits256::default();
    for item in list {
        let (first, last) = item.value;
        for i in first..=last.min(limit.saturating_sub(1)).min(255) {
            bits.insert(i as u32);
        }
    }
    bits.iter().collect()
}

/// Distinct unknown names that get a did-you-mean search.
const MAX_SUGGESTIONS: usize = 256;

/// The syntax tree viewed as a system: blocks by kind, names resolved, platform facts.
pub struct System<'a> {
    pub platform: PlatformFacts,
    pub partitions: Vec<&'a Partition>,
    pub channels: Vec<&'a Channel>,
    pub schedules: Vec<&'a Schedule>,
    /// Partition name to index (the first declaration wins).
    pub index: HashMap<&'a str, usize>,
    /// Every partition's cores (below 256).
    pub cores: Vec<Bits256>,
    /// Did-you-mean answers already computed (a misspelt name often repeats).
    suggestions: std::cell::RefCell<HashMap<String, Option<&'a str>>>,
}

impl<'a> System<'a> {
    /// Groups the blocks of `file`. Diagnostics about the platform go to `diags`.
    pub fn new(file: &'a File, diags: &mut Vec<Diagnostic>) -> Self {
        let platform = PlatformFacts::from_file(file, diags);
        let mut partitions = Vec::new();
        let mut channels = Vec::new();
        let mut schedules = Vec::new();
        for item in &file.items {
            match item {
                Item::Partition(p) => partitions.push(&**p),
                Item::Channel(c) => channels.push(c),
                Item::Schedule(s) => schedules.push(s),
                Item::Platform(_) | Item::Hypervisor(_) => {}
            }
        }
        let mut index = HashMap::with_capacity(partitions.len());
        for (i, p) in partitions.iter().enumerate() {
            index.entry(p.name.value.as_str()).or_insert(i);
        }
        let cores = partitions
            .iter()
            .map(|p| {
                let mut bits = Bits256::default();
                if let Some(c) = &p.cores {
                    for core in expand(&c.value, MAX_CORES as u64) {
                        bits.insert(core);
                    }
                }
                bits
            })
            .collect();
        Self { platform, partitions, channels, schedules, index, cores, suggestions: Default::default() }
    }

    /// Resolves a partition name, reporting an unknown one with a suggestion.
    pub fn resolve(&self, name: &crate::span::Spanned<String>, diags: &mut Vec<Diagnostic>) -> Option<usize> {
        if let Some(i) = self.index.get(name.value.as_str()) {
            return Some(*i);
        }
        let hint = match self.closest(&name.value) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "declare it with `partition NAME { ... }`".to_string(),
        };
        diags.push(
            Diagnostic::new(Code::UnknownName, name.span, format!("no partition named `{}`", name.value))
                .label("unknown partition")
                .hint(hint),
        );
        None
    }

    /// How many channels each partition is an endpoint of (unknown names count nowhere).
    pub fn channels_per_partition(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.partitions.len()];
        for c in &self.channels {
            let ends =
                [&c.from, &c.to].map(|e| e.as_ref().and_then(|n| self.index.get(n.value.as_str())).copied());
            for i in ends.iter().flatten() {
                counts[*i] += 1;
            }
            if ends[0].is_some() && ends[0] == ends[1] {
                // A self-loop is one channel (and an error of its own).
                counts[ends[0].unwrap_or(0)] -= 1;
            }
        }
        counts
    }

    /// Whether partition `i` is `kind linux`.
    pub fn is_linux(&self, i: usize) -> bool {
        self.partitions.get(i).and_then(|p| p.kind.as_ref()).is_some_and(|k| k.value == Kind::Linux)
    }

    fn closest(&self, word: &str) -> Option<&'a str> {
        if let Some(known) = self.suggestions.borrow().get(word) {
            return *known;
        }
        // Each suggestion scans every name; past a few hundred distinct unknown names
        // (a generated file gone wrong) stop suggesting so the checker stays linear.
        if self.suggestions.borrow().len() >= MAX_SUGGESTIONS {
            return None;
        }
        let answer = did_you_mean(word, self.partitions.iter().map(|p| p.name.value.as_str()));
        self.suggestions.borrow_mut().insert(word.to_string(), answer);
        answer
    }
}

/// Everything the checker found, sorted by position.
pub fn check(file: &File) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let system = System::new(file, &mut diags);
    partitions::check(&system, &mut diags);
    if let Some(ways) = &system.platform.hv_llc_ways {
        partitions::check_ways(&system, ways, &mut diags);
    }
    let schedule_of_core = cores::check(&system, &mut diags);
    memory::check(&system, &mut diags);
    cache::check(&system, &schedule_of_core, &mut diags);
    devices::check(&system, &mut diags);
    channels::check(&system, &mut diags);
    sort(&mut diags);
    diags
}

/// A span for whole-file problems (the start of the file).
pub const FILE_START: Span = Span::new(0, 0);
