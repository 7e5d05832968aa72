//! Reading and writing the per-core register state of [`rogue::state`] with the
//! instructions a partition runs at CPL 0 without a VM exit (part of the program, not the
//! host-tested library).
//!
//! The partition is built for `x86_64-unknown-none`, whose compiled code is soft-float and
//! never touches x87, SSE or AVX registers; the debug registers, CR2 and the segment bases
//! are not used by the SDK either. So the inline assembly below may overwrite all of them
//! without declaring them (the soft-float target cannot even name them as operands), and
//! what it reads back is exactly what the partition or the hypervisor left there.

use core::arch::asm;
use rogue::state::{cr4, parse_fxsave, Features, SegmentBases, Snapshot, FXSAVE_BYTES, XCR0_AVX512};

/// CPUID leaf `leaf`, subleaf `sub`: (eax, ebx, ecx, edx).
fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: CPUID only reads; it exits to the hypervisor, which answers. RBX is reserved
    // by LLVM, so it is saved around the instruction.
    unsafe {
        asm!(
            "mov {saved:r}, rbx",
            "cpuid",
            "xchg {saved:r}, rbx",
            saved = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") sub => c,
            out("edx") d,
            options(nostack, preserves_flags),
        );
    }
    (a, b, c, d)
}

/// What the processor (as the hypervisor's CPUID presents it) offers, the XSAVE
/// components as far as XCR0 may enable them (CPUID leaf 0xD).
pub fn features() -> Features {
    let (max_leaf, ..) = cpuid(0, 0);
    let (_, _, ecx1, _) = cpuid(1, 0);
    let leaf7_ebx = if max_leaf >= 7 { cpuid(7, 0).1 } else { 0 };
    let xsave = ecx1 & (1 << 26) != 0 && max_leaf >= 0xD;
    let xcr0_supported = if xsave { cpuid(0xD, 0).0 as u64 } else { 0 };
    let avx = xsave && ecx1 & (1 << 28) != 0 && xcr0_supported & 0b111 == 0b111;
    let avx512f_bw = leaf7_ebx & (1 << 16) != 0 && leaf7_ebx & (1 << 30) != 0;
    let avx512 = avx && avx512f_bw && xcr0_supported & XCR0_AVX512 == XCR0_AVX512;
    Features { fsgsbase: leaf7_ebx & 1 != 0, avx, avx512 }
}

pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effect (the hypervisor may shadow it).
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes CR0. The caller chooses bits the partition can live with (or that the
/// hypervisor must refuse).
pub fn write_cr0(v: u64) {
    // SAFETY: the rogue partition deliberately changes its own CR0; only cache-control
    // bits are changed by its callers, never PE/PG.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) };
}

pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effect (the hypervisor may shadow it).
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes CR4. Callers set feature bits only, never clear PAE.
pub fn write_cr4(v: u64) {
    // SAFETY: the partition changes its own CR4; callers only add feature-enable bits.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// XSETBV of extended control register `xcr`.
pub fn xsetbv(xcr: u32, value: u64) {
    // SAFETY: XSETBV always exits to the hypervisor, which either sets the value or
    // handles the partition; it touches no memory.
    unsafe {
        asm!("xsetbv", in("ecx") xcr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack))
    };
}

/// Why enabling a feature did not work as the architecture says.
#[derive(Clone, Copy, Debug)]
pub struct Cr4Mismatch {
    pub wrote: u64,
    pub read: u64,
}

/// Turns on the CR4 bits `features` needs (FSGSBASE, OSXSAVE; the hypervisor allows
/// both) and, with AVX, XCR0 = x87|SSE|AVX (and the AVX-512 components with AVX-512). A read of CR4 must then return exactly what
/// was written (the hypervisor may own bits, but it must shadow them consistently).
pub fn enable(features: Features) -> Result<(), Cr4Mismatch> {
    let before = read_cr4();
    let mut wanted = before;
    if features.fsgsbase {
        wanted |= cr4::FSGSBASE;
    }
    if features.avx {
        wanted |= cr4::OSXSAVE;
    }
    if wanted != before {
        write_cr4(wanted);
    }
    let read = read_cr4();
    if features.avx {
        xsetbv(0, features.xcr0());
    }
    if read == wanted {
        Ok(())
    } else {
        Err(Cr4Mismatch { wrote: wanted, read })
    }
}

#[repr(C, align(16))]
struct FxArea([u8; FXSAVE_BYTES]);

#[repr(C, align(16))]
struct Lanes([[u64; 2]; 16]);

#[repr(C, align(64))]
struct Opmasks([u64; 8]);

#[repr(C, align(64))]
struct ZmmUpper([[u64; 4]; 16]);

#[repr(C, align(64))]
struct ZmmHigh([[u64; 8]; 16]);

/// Reads every item `features` covers. Writes none of them.
pub fn capture(features: Features) -> Snapshot {
    let mut s = Snapshot::default();
    // SAFETY: MOV from debug registers and CR2 at CPL 0 only reads them.
    unsafe {
        asm!(
            "mov {0}, dr0", "mov {1}, dr1", "mov {2}, dr2", "mov {3}, dr3", "mov {4}, dr6", "mov {5}, cr2",
            "mov {6}, cr8",
            out(reg) s.debug_address[0], out(reg) s.debug_address[1], out(reg) s.debug_address[2],
            out(reg) s.debug_address[3], out(reg) s.dr6, out(reg) s.cr2, out(reg) s.cr8,
            options(nomem, nostack, preserves_flags),
        );
    }
    if features.fsgsbase {
        let mut b = SegmentBases::default();
        // SAFETY: CR4.FSGSBASE is on (`enable`). SWAPGS twice leaves GS base and
        // KERNEL_GS_BASE as they were; in between only RDGSBASE runs.
        unsafe {
            asm!(
                "rdfsbase {fs}", "rdgsbase {gs}", "swapgs", "rdgsbase {kgs}", "swapgs",
                fs = out(reg) b.fs, gs = out(reg) b.gs, kgs = out(reg) b.kernel_gs,
                options(nomem, nostack, preserves_flags),
            );
        }
        s.bases = Some(b);
    }
    let mut area = FxArea([0; FXSAVE_BYTES]);
    // SAFETY: FXSAVE64 writes 512 bytes to the 16-byte aligned buffer; CR4.OSFXSR is set by
    // the hypervisor for every RT partition.
    unsafe { asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags)) };
    let fx = parse_fxsave(&area.0);
    (s.fcw, s.mxcsr, s.st, s.xmm) = (fx.fcw, fx.mxcsr, fx.st, fx.xmm);
    if features.avx {
        let mut upper = Lanes([[0; 2]; 16]);
        // SAFETY: CR4.OSXSAVE and XCR0.AVX are on (`enable`); each VEXTRACTF128 stores 16
        // bytes into the aligned 256-byte buffer.
        unsafe {
            asm!(
                "vextractf128 [{p}], ymm0, 1", "vextractf128 [{p} + 16], ymm1, 1",
                "vextractf128 [{p} + 32], ymm2, 1", "vextractf128 [{p} + 48], ymm3, 1",
                "vextractf128 [{p} + 64], ymm4, 1", "vextractf128 [{p} + 80], ymm5, 1",
                "vextractf128 [{p} + 96], ymm6, 1", "vextractf128 [{p} + 112], ymm7, 1",
                "vextractf128 [{p} + 128], ymm8, 1", "vextractf128 [{p} + 144], ymm9, 1",
                "vextractf128 [{p} + 160], ymm10, 1", "vextractf128 [{p} + 176], ymm11, 1",
                "vextractf128 [{p} + 192], ymm12, 1", "vextractf128 [{p} + 208], ymm13, 1",
                "vextractf128 [{p} + 224], ymm14, 1", "vextractf128 [{p} + 240], ymm15, 1",
                p = in(reg) upper.0.as_mut_ptr(),
                options(nostack, preserves_flags),
            );
        }
        s.ymm_upper = Some(upper.0);
    }
    if features.avx512 {
        let (mut k, mut upper, mut high) = (Opmasks([0; 8]), ZmmUpper([[0; 4]; 16]), ZmmHigh([[0; 8]; 16]));
        // SAFETY: XCR0 enables the opmask and ZMM components (`enable`); each store stays
        // inside its 64-byte aligned buffer (8 x 8, 16 x 32 and 16 x 64 bytes).
        unsafe {
            asm!(
                "kmovq [{k}], k0", "kmovq [{k} + 8], k1", "kmovq [{k} + 16], k2", "kmovq [{k} + 24], k3",
                "kmovq [{k} + 32], k4", "kmovq [{k} + 40], k5", "kmovq [{k} + 48], k6", "kmovq [{k} + 56], k7",
                "vextracti64x4 [{u}], zmm0, 1", "vextracti64x4 [{u} + 32], zmm1, 1",
                "vextracti64x4 [{u} + 64], zmm2, 1", "vextracti64x4 [{u} + 96], zmm3, 1",
                "vextracti64x4 [{u} + 128], zmm4, 1", "vextracti64x4 [{u} + 160], zmm5, 1",
                "vextracti64x4 [{u} + 192], zmm6, 1", "vextracti64x4 [{u} + 224], zmm7, 1",
                "vextracti64x4 [{u} + 256], zmm8, 1", "vextracti64x4 [{u} + 288], zmm9, 1",
                "vextracti64x4 [{u} + 320], zmm10, 1", "vextracti64x4 [{u} + 352], zmm11, 1",
                "vextracti64x4 [{u} + 384], zmm12, 1", "vextracti64x4 [{u} + 416], zmm13, 1",
                "vextracti64x4 [{u} + 448], zmm14, 1", "vextracti64x4 [{u} + 480], zmm15, 1",
                "vmovdqu64 [{h}], zmm16", "vmovdqu64 [{h} + 64], zmm17", "vmovdqu64 [{h} + 128], zmm18",
                "vmovdqu64 [{h} + 192], zmm19", "vmovdqu64 [{h} + 256], zmm20", "vmovdqu64 [{h} + 320], zmm21",
                "vmovdqu64 [{h} + 384], zmm22", "vmovdqu64 [{h} + 448], zmm23", "vmovdqu64 [{h} + 512], zmm24",
                "vmovdqu64 [{h} + 576], zmm25", "vmovdqu64 [{h} + 640], zmm26", "vmovdqu64 [{h} + 704], zmm27",
                "vmovdqu64 [{h} + 768], zmm28", "vmovdqu64 [{h} + 832], zmm29", "vmovdqu64 [{h} + 896], zmm30",
                "vmovdqu64 [{h} + 960], zmm31",
                k = in(reg) k.0.as_mut_ptr(), u = in(reg) upper.0.as_mut_ptr(), h = in(reg) high.0.as_mut_ptr(),
                options(nostack, preserves_flags),
            );
        }
        (s.opmask, s.zmm_upper, s.zmm_high) = (Some(k.0), Some(upper.0), Some(high.0));
    }
    s
}

/// Writes every item of `s` (those it covers) into this core's registers.
pub fn plant(s: &Snapshot) {
    // SAFETY: DR0-3 receive canonical addresses while DR7 keeps every breakpoint disabled,
    // so no #DB can follow; DR6 gets only its writable status bits; CR2 is never used by
    // the partition (it takes no page faults); CR8 (the task priority) only masks
    // interrupts, which an RT partition runs without anyway.
    unsafe {
        asm!(
            "mov dr0, {0}", "mov dr1, {1}", "mov dr2, {2}", "mov dr3, {3}", "mov dr6, {4}", "mov cr2, {5}",
            "mov cr8, {6}",
            in(reg) s.debug_address[0], in(reg) s.debug_address[1], in(reg) s.debug_address[2],
            in(reg) s.debug_address[3], in(reg) s.dr6, in(reg) s.cr2, in(reg) s.cr8,
            options(nomem, nostack, preserves_flags),
        );
    }
    if let Some(b) = s.bases {
        // SAFETY: CR4.FSGSBASE is on and the values are canonical. Neither the SDK nor this
        // program addresses memory through FS or GS. After WRGSBASE + SWAPGS, the marker is
        // in KERNEL_GS_BASE; the second WRGSBASE sets the active GS base.
        unsafe {
            asm!(
                "wrgsbase {kgs}", "swapgs", "wrgsbase {gs}", "wrfsbase {fs}",
                kgs = in(reg) b.kernel_gs, gs = in(reg) b.gs, fs = in(reg) b.fs,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
    // ST7 is pushed first so that ST0 ends up holding `s.st[0]`.
    let mut st_bytes = [[0u8; 10]; 8];
    for (i, r) in s.st.iter().enumerate() {
        st_bytes[7 - i] = r.to_bytes();
    }
    let (fcw, mxcsr) = (s.fcw, s.mxcsr);
    // SAFETY: FNINIT empties the x87 stack so eight FLDs fit without overflow; every
    // exception stays masked in the new control word; the MXCSR value has only defined
    // bits (masks, rounding, flush-to-zero). The buffers are read only.
    unsafe {
        asm!(
            "fninit",
            "fldcw word ptr [{fcw}]",
            "fld tbyte ptr [{st}]", "fld tbyte ptr [{st} + 10]", "fld tbyte ptr [{st} + 20]",
            "fld tbyte ptr [{st} + 30]", "fld tbyte ptr [{st} + 40]", "fld tbyte ptr [{st} + 50]",
            "fld tbyte ptr [{st} + 60]", "fld tbyte ptr [{st} + 70]",
            "ldmxcsr dword ptr [{mxcsr}]",
            fcw = in(reg) &fcw, st = in(reg) st_bytes.as_ptr(), mxcsr = in(reg) &mxcsr,
            options(nostack, readonly),
        );
    }
    let xmm = Lanes(s.xmm);
    // SAFETY: MOVDQU loads 16 bytes each from the aligned 256-byte buffer. Legacy SSE
    // loads keep bits 255:128 of the YMM registers, which are planted next.
    unsafe {
        asm!(
            "movdqu xmm0, [{p}]", "movdqu xmm1, [{p} + 16]", "movdqu xmm2, [{p} + 32]",
            "movdqu xmm3, [{p} + 48]", "movdqu xmm4, [{p} + 64]", "movdqu xmm5, [{p} + 80]",
            "movdqu xmm6, [{p} + 96]", "movdqu xmm7, [{p} + 112]", "movdqu xmm8, [{p} + 128]",
            "movdqu xmm9, [{p} + 144]", "movdqu xmm10, [{p} + 160]", "movdqu xmm11, [{p} + 176]",
            "movdqu xmm12, [{p} + 192]", "movdqu xmm13, [{p} + 208]", "movdqu xmm14, [{p} + 224]",
            "movdqu xmm15, [{p} + 240]",
            p = in(reg) xmm.0.as_ptr(),
            options(nostack, readonly, preserves_flags),
        );
    }
    if let Some(upper) = s.ymm_upper {
        let upper = Lanes(upper);
        // SAFETY: CR4.OSXSAVE and XCR0.AVX are on; VINSERTF128 replaces bits 255:128 of
        // each YMM register and keeps the XMM half planted above.
        unsafe {
            asm!(
                "vinsertf128 ymm0, ymm0, [{p}], 1", "vinsertf128 ymm1, ymm1, [{p} + 16], 1",
                "vinsertf128 ymm2, ymm2, [{p} + 32], 1", "vinsertf128 ymm3, ymm3, [{p} + 48], 1",
                "vinsertf128 ymm4, ymm4, [{p} + 64], 1", "vinsertf128 ymm5, ymm5, [{p} + 80], 1",
                "vinsertf128 ymm6, ymm6, [{p} + 96], 1", "vinsertf128 ymm7, ymm7, [{p} + 112], 1",
                "vinsertf128 ymm8, ymm8, [{p} + 128], 1", "vinsertf128 ymm9, ymm9, [{p} + 144], 1",
                "vinsertf128 ymm10, ymm10, [{p} + 160], 1", "vinsertf128 ymm11, ymm11, [{p} + 176], 1",
                "vinsertf128 ymm12, ymm12, [{p} + 192], 1", "vinsertf128 ymm13, ymm13, [{p} + 208], 1",
                "vinsertf128 ymm14, ymm14, [{p} + 224], 1", "vinsertf128 ymm15, ymm15, [{p} + 240], 1",
                p = in(reg) upper.0.as_ptr(),
                options(nostack, readonly, preserves_flags),
            );
        }
    }
    if let (Some(k), Some(upper), Some(high)) = (s.opmask, s.zmm_upper, s.zmm_high) {
        let (k, upper, high) = (Opmasks(k), ZmmUpper(upper), ZmmHigh(high));
        // SAFETY: XCR0 enables the opmask and ZMM components; VINSERTI64X4 replaces bits
        // 511:256 of ZMM0-15 and keeps the XMM and YMM halves planted above (it comes after
        // the VEX-encoded VINSERTF128, which clears bits 511:256). The buffers are read only.
        unsafe {
            asm!(
                "kmovq k0, [{k}]", "kmovq k1, [{k} + 8]", "kmovq k2, [{k} + 16]", "kmovq k3, [{k} + 24]",
                "kmovq k4, [{k} + 32]", "kmovq k5, [{k} + 40]", "kmovq k6, [{k} + 48]", "kmovq k7, [{k} + 56]",
                "vinserti64x4 zmm0, zmm0, [{u}], 1", "vinserti64x4 zmm1, zmm1, [{u} + 32], 1",
                "vinserti64x4 zmm2, zmm2, [{u} + 64], 1", "vinserti64x4 zmm3, zmm3, [{u} + 96], 1",
                "vinserti64x4 zmm4, zmm4, [{u} + 128], 1", "vinserti64x4 zmm5, zmm5, [{u} + 160], 1",
                "vinserti64x4 zmm6, zmm6, [{u} + 192], 1", "vinserti64x4 zmm7, zmm7, [{u} + 224], 1",
                "vinserti64x4 zmm8, zmm8, [{u} + 256], 1", "vinserti64x4 zmm9, zmm9, [{u} + 288], 1",
                "vinserti64x4 zmm10, zmm10, [{u} + 320], 1", "vinserti64x4 zmm11, zmm11, [{u} + 352], 1",
                "vinserti64x4 zmm12, zmm12, [{u} + 384], 1", "vinserti64x4 zmm13, zmm13, [{u} + 416], 1",
                "vinserti64x4 zmm14, zmm14, [{u} + 448], 1", "vinserti64x4 zmm15, zmm15, [{u} + 480], 1",
                "vmovdqu64 zmm16, [{h}]", "vmovdqu64 zmm17, [{h} + 64]", "vmovdqu64 zmm18, [{h} + 128]",
                "vmovdqu64 zmm19, [{h} + 192]", "vmovdqu64 zmm20, [{h} + 256]", "vmovdqu64 zmm21, [{h} + 320]",
                "vmovdqu64 zmm22, [{h} + 384]", "vmovdqu64 zmm23, [{h} + 448]", "vmovdqu64 zmm24, [{h} + 512]",
                "vmovdqu64 zmm25, [{h} + 576]", "vmovdqu64 zmm26, [{h} + 640]", "vmovdqu64 zmm27, [{h} + 704]",
                "vmovdqu64 zmm28, [{h} + 768]", "vmovdqu64 zmm29, [{h} + 832]", "vmovdqu64 zmm30, [{h} + 896]",
                "vmovdqu64 zmm31, [{h} + 960]",
                k = in(reg) k.0.as_ptr(), u = in(reg) upper.0.as_ptr(), h = in(reg) high.0.as_ptr(),
                options(nostack, readonly, preserves_flags),
            );
        }
    }
}
