//! A model of the RDT allocation MSRs of one package and one logical CPU, with the
//! #GP rules of the SDM (Vol. 3B, "Cache Allocation Technology", "Memory Bandwidth
//! Allocation") as `bochs-rdt` emulates them: a rejected write raises #GP and changes
//! nothing. The tests run every write a [`super::plan::CachePlan`] makes through it, so a
//! plan that would fault on hardware fails on the host.
//!
//! | MSR | #GP on write when |
//! |---|---|
//! | `IA32_PQR_ASSOC` | class above the highest (halved under CDP), or any of bits 31:10 set |
//! | `IA32_L3_QOS_MASK_n` | `n` above the highest mask register, mask 0, not one run of ones, a bit at or above the CBM length |
//! | `IA32_L3_QOS_CFG` | no CDP, or bits other than 0 set |
//! | `IA32_L2_QOS_EXT_BW_THRTL_n` | no MBA, `n` above MBA's highest class, bits above 15, or a delay above the maximum (hardware may clamp instead; the model is the stricter one) |
//! | anything else | always (not an RDT MSR this model knows) |

use alloc::vec::Vec;

use super::{
    contiguous, CatInfo, MbaInfo, IA32_L3_MASK_BASE, IA32_L3_QOS_CFG, IA32_MBA_THRTL_BASE, IA32_PQR_ASSOC,
};

/// A write the CPU refused with #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralProtection {
    pub msr: u32,
    pub value: u64,
}

/// The MSRs' state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdtMsrs {
    cat: CatInfo,
    mba: Option<MbaInfo>,
    /// `IA32_L3_QOS_MASK_0..=max_cos`, reset to all ways.
    masks: Vec<u32>,
    cdp: bool,
    pqr_assoc: u64,
    mba_delays: Vec<u16>,
    /// Accepted writes, in order.
    pub log: Vec<(u32, u64)>,
}

impl RdtMsrs {
    /// The reset state of a CPU with `cat` (and `mba`).
    pub fn new(cat: CatInfo, mba: Option<MbaInfo>) -> Self {
        RdtMsrs {
            cat,
            mba,
            masks: alloc::vec![cat.full_mask(); cat.max_cos as usize + 1],
            cdp: false,
            pqr_assoc: 0,
            mba_delays: alloc::vec![0; mba.map_or(0, |m| m.max_cos as usize + 1)],
            log: Vec::new(),
        }
    }

    /// WRMSR.
    pub fn write(&mut self, msr: u32, value: u64) -> Result<(), GeneralProtection> {
        let gp = Err(GeneralProtection { msr, value });
        let mask_end = IA32_L3_MASK_BASE + self.masks.len() as u32;
        match msr {
            IA32_PQR_ASSOC => {
                let cos = value >> 32;
                if cos > self.cat.max_cos_in_mode(self.cdp) as u64 || value & 0xFFFF_FC00 != 0 {
                    return gp;
                }
                self.pqr_assoc = value;
            }
            m if (IA32_L3_MASK_BASE..mask_end).contains(&m) => {
                let width_ok = self.cat.ways >= 32 || value >> self.cat.ways == 0;
                if value > u32::MAX as u64 || !width_ok || !contiguous(value as u32) {
                    return gp;
                }
                self.masks[(m - IA32_L3_MASK_BASE) as usize] = value as u32;
            }
            IA32_L3_QOS_CFG => {
                if !self.cat.cdp || value & !1 != 0 {
                    return gp;
                }
                self.cdp = value & 1 != 0;
            }
            m if (IA32_MBA_THRTL_BASE..IA32_MBA_THRTL_BASE + self.mba_delays.len() as u32).contains(&m) => {
                let max = self.mba.map_or(0, |m| m.max_delay) as u64;
                if value > 0xFFFF || value > max {
                    return gp;
                }
                self.mba_delays[(m - IA32_MBA_THRTL_BASE) as usize] = value as u16;
            }
            _ => return gp,
        }
        self.log.push((msr, value));
        Ok(())
    }

    /// The class of service `IA32_PQR_ASSOC` selects.
    pub fn current_class(&self) -> u16 {
        (self.pqr_assoc >> 32) as u16
    }

    /// `(data mask, code mask)` of class `cos` as the cache applies it now.
    pub fn masks_of(&self, cos: u16) -> Option<(u32, u32)> {
        let n = cos as usize;
        if self.cdp {
            Some((*self.masks.get(2 * n)?, *self.masks.get(2 * n + 1)?))
        } else {
            self.masks.get(n).map(|&m| (m, m))
        }
    }

    /// The MBA delay of class `cos`.
    pub fn mba_delay(&self, cos: u16) -> Option<u16> {
        self.mba_delays.get(cos as usize).copied()
    }

    pub fn cdp_enabled(&self) -> bool {
        self.cdp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `bochs-rdt` emulates: 11 ways, 16 classes, shareable 0x600, no CDP, no MBA.
    fn bochs_rdt() -> RdtMsrs {
        RdtMsrs::new(CatInfo { ways: 11, max_cos: 15, shareable_mask: 0x600, cdp: false }, None)
    }

    #[test]
    fn masks_follow_the_sdm_rules() {
        let mut m = bochs_rdt();
        assert_eq!(m.masks_of(3), Some((0x7FF, 0x7FF)), "reset: all ways");
        assert_eq!(m.write(0xC93, 0x00F), Ok(()));
        assert_eq!(m.masks_of(3), Some((0xF, 0xF)));
        for bad in [0, 0b101, 0x800, 0xFFF, 1 << 32, 0x7FF | 1 << 40] {
            assert_eq!(m.write(0xC93, bad), Err(GeneralProtection { msr: 0xC93, value: bad }), "{bad:#x}");
            assert_eq!(m.masks_of(3), Some((0xF, 0xF)), "a refused write changes nothing");
        }
        assert!(m.write(0xC9F, 0x7FF).is_ok(), "COS 15 exists");
        assert!(m.write(0xCA0, 0x7FF).is_err(), "COS 16 does not");
        assert_eq!(m.log, vec![(0xC93, 0xF), (0xC9F, 0x7FF)]);
    }

    #[test]
    fn pqr_assoc_follows_the_sdm_rules() {
        let mut m = bochs_rdt();
        assert_eq!(m.write(IA32_PQR_ASSOC, 15 << 32 | 5), Ok(()), "RMID in bits 9:0 is fine");
        assert_eq!(m.current_class(), 15);
        assert!(m.write(IA32_PQR_ASSOC, 16 << 32).is_err());
        assert!(m.write(IA32_PQR_ASSOC, 1 << 10).is_err(), "bits 31:10 reserved");
        assert_eq!(m.current_class(), 15);
    }

    #[test]
    fn cdp_and_mba_registers() {
        let mut no_cdp = bochs_rdt();
        assert!(no_cdp.write(IA32_L3_QOS_CFG, 1).is_err(), "no CDP: #GP");
        assert!(no_cdp.write(IA32_MBA_THRTL_BASE, 0).is_err(), "no MBA: #GP");
        let cat = CatInfo { ways: 12, max_cos: 15, shareable_mask: 0, cdp: true };
        let mba = MbaInfo { max_delay: 90, max_cos: 7, linear: true };
        let mut m = RdtMsrs::new(cat, Some(mba));
        assert!(m.write(IA32_L3_QOS_CFG, 3).is_err());
        assert_eq!(m.write(IA32_L3_QOS_CFG, 1), Ok(()));
        assert!(m.cdp_enabled());
        m.write(0xC92, 0x3).unwrap();
        m.write(0xC93, 0xC).unwrap();
        assert_eq!(m.masks_of(1), Some((0x3, 0xC)));
        assert!(m.write(IA32_PQR_ASSOC, 8 << 32).is_err(), "CDP halves the classes");
        assert!(m.write(IA32_PQR_ASSOC, 7 << 32).is_ok());
        assert!(m.write(IA32_MBA_THRTL_BASE + 7, 90).is_ok());
        assert!(m.write(IA32_MBA_THRTL_BASE + 7, 91).is_err());
        assert!(m.write(IA32_MBA_THRTL_BASE + 8, 10).is_err(), "MBA stops at class 7");
        assert_eq!(m.mba_delay(7), Some(90));
    }
}
