//! Which class of service a core's `IA32_PQR_ASSOC` holds, so that the per-switch hook
//! writes it only when the partition a core enters has another class: a dedicated core
//! writes it once, at its first entry; a scheduled core at each window switch between
//! partitions of different classes (never between two partitions of class 0).
//!
//! ```
//! use hallows_core::cat::switch::ClassTracker;
//! let mut core = ClassTracker::default();
//! assert_eq!(core.enter(Some(2)).map(|w| w.value), Some(2 << 32)); // first entry: unknown
//! assert_eq!(core.enter(Some(2)), None); // same class: nothing to write
//! assert_eq!(core.enter(Some(0)).map(|w| w.value), Some(0));
//! assert_eq!(core.enter(None), None); // CAT not in use: never a write
//! ```

use super::{assoc_write, MsrWrite};

/// One core's view of its `IA32_PQR_ASSOC`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassTracker {
    /// The class the register holds, or `None` when not known (before the first write:
    /// firmware, INIT and a previous owner of the core may have left anything there).
    current: Option<u16>,
}

impl ClassTracker {
    /// The core is about to enter a partition of class `class` (`None`: the hypervisor
    /// does not program CAT, so the register must not be touched). Returns the write to
    /// perform, if any; the caller performs it before the VM entry.
    pub fn enter(&mut self, class: Option<u16>) -> Option<MsrWrite> {
        let class = class?;
        if self.current == Some(class) {
            return None;
        }
        self.current = Some(class);
        Some(assoc_write(class))
    }

    /// The class the core's register holds, when known.
    pub fn current(&self) -> Option<u16> {
        self.current
    }

    /// Forget the register's value (after something else may have written it).
    pub fn forget(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the sequence of entries, a write happens exactly when the class
        /// differs from the previous entry's (or at the first), and the register then
        /// always holds the class of the partition being entered.
        #[test]
        fn writes_exactly_on_class_changes(classes in proptest::collection::vec(0u16..4, 1..64)) {
            let mut t = ClassTracker::default();
            let mut register: Option<u16> = None;
            let mut previous: Option<u16> = None;
            for &c in &classes {
                let w = t.enter(Some(c));
                prop_assert_eq!(w.is_some(), previous != Some(c));
                if let Some(w) = w {
                    prop_assert_eq!(w.msr, super::super::IA32_PQR_ASSOC);
                    register = Some((w.value >> 32) as u16);
                }
                prop_assert_eq!(register, Some(c));
                previous = Some(c);
            }
        }
    }

    #[test]
    fn a_scheduled_core_alternating_two_classes_writes_each_switch() {
        let mut t = ClassTracker::default();
        let windows = [1, 2, 1, 2, 2, 0, 0];
        let writes: Vec<bool> = windows.iter().map(|&c| t.enter(Some(c)).is_some()).collect();
        assert_eq!(writes, [true, true, true, true, false, true, false]);
        t.forget();
        assert!(t.enter(Some(0)).is_some(), "after forget the next entry writes again");
        assert_eq!(t.current(), Some(0));
    }

    #[test]
    fn no_cat_never_writes() {
        let mut t = ClassTracker::default();
        for _ in 0..3 {
            assert_eq!(t.enter(None), None);
        }
        assert_eq!(t.current(), None);
    }
}
