//! Decoding the instruction behind an MMIO exit.
//!
//! An EPT violation on an emulated MMIO page tells the hypervisor the guest-physical
//! address and whether it was a read or a write, but not the width, the register or the
//! instruction length. The hypervisor reads up to 15 bytes at the guest's RIP and calls
//! [`decode`]; the result says how to complete the access and by how much to advance RIP.
//!
//! Only the `mov` family that drivers use for MMIO (Linux's `readl`/`writel` and friends)
//! is accepted: `mov r/m, reg`, `mov reg, r/m`, `mov r/m, imm`, the `moffs` forms and
//! `movzx`/`movsx` loads. Anything else (read-modify-write instructions, string moves,
//! segment or control registers, locked or invalid encodings) is refused with an error
//! the hypervisor reports to the health monitor. The bytes are guest-controlled: decoding
//! never panics on any input.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Longest x86 instruction.
pub const MAX_INSTRUCTION_BYTES: usize = 15;

/// Whether the guest reads the device or writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioDirection {
    /// Device to register.
    Read,
    /// Register or immediate to device.
    Write,
}

/// A general-purpose register operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gpr {
    /// 0 = rax, 1 = rcx, 2 = rdx, 3 = rbx, 4 = rsp, 5 = rbp, 6 = rsi, 7 = rdi, 8..15 = r8..r15
    /// (the x86 encoding order).
    pub index: u8,
    /// Width of the operand in bytes (1, 2, 4 or 8).
    pub width: u8,
    /// `ah`, `ch`, `dh` or `bh`: bits 8-15 of the register.
    pub high_byte: bool,
}

impl Gpr {
    /// The operand's value given the full 64-bit register.
    pub fn get(&self, full: u64) -> u64 {
        if self.high_byte {
            (full >> 8) & 0xFF
        } else {
            full & width_mask(self.width)
        }
    }

    /// The full register after writing `value` to this operand, following x86 rules:
    /// 8- and 16-bit writes keep the other bits, 32-bit writes zero bits 32-63.
    pub fn set(&self, full: u64, value: u64) -> u64 {
        if self.high_byte {
            (full & !0xFF00) | ((value & 0xFF) << 8)
        } else {
            match self.width {
                4 | 8 => value & width_mask(self.width),
                w => (full & !width_mask(w)) | (value & width_mask(w)),
            }
        }
    }
}

/// The non-memory operand of the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOperand {
    /// A register: the source of a write or the destination of a read.
    Register(Gpr),
    /// An immediate (writes only), already truncated to the access size.
    Immediate(u64),
}

/// How a load narrower than its destination register is widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Plain `mov`: access and register have the same width.
    None,
    /// `movzx`.
    Zero,
    /// `movsx`/`movsxd`.
    Sign,
}

/// A decoded MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioInstruction {
    /// Bytes transferred to or from the device: 1, 2, 4 or 8.
    pub size: u8,
    /// Read or write.
    pub direction: MmioDirection,
    /// Register or immediate.
    pub operand: MmioOperand,
    /// Widening applied to reads.
    pub extension: Extension,
    /// Instruction length: add it to RIP after emulating.
    pub length: u8,
}

impl MmioInstruction {
    /// For a write, the value to send to the device, given a way to read the guest's
    /// 64-bit registers by [`Gpr::index`]. `None` for reads.
    pub fn write_value(&self, read_gpr: impl Fn(u8) -> u64) -> Option<u64> {
        if self.direction != MmioDirection::Write {
            return None;
        }
        Some(match self.operand {
            MmioOperand::Register(gpr) => gpr.get(read_gpr(gpr.index)) & width_mask(self.size),
            MmioOperand::Immediate(value) => value,
        })
    }

    /// For a read that returned `data` from the device, the destination register's index
    /// and its new full value given its `old` full value. `None` for writes.
    pub fn complete_read(&self, old: u64, data: u64) -> Option<(u8, u64)> {
        let MmioOperand::Register(gpr) = self.operand else { return None };
        if self.direction != MmioDirection::Read {
            return None;
        }
        let data = data & width_mask(self.size);
        let widened = match self.extension {
            Extension::Sign => sign_extend(data, self.size),
            Extension::None | Extension::Zero => data,
        };
        Some((gpr.index, gpr.set(old, widened)))
    }
}

/// Why the bytes are not an emulatable MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioDecodeError {
    /// Bitness other than 16, 32 or 64.
    BadBitness,
    /// No bytes, or not enough bytes for the instruction.
    Truncated,
    /// Not a valid instruction.
    Invalid,
    /// A valid instruction this emulator does not handle.
    Unsupported(Mnemonic),
    /// A `mov` without a memory operand or with a non-GPR register (segment, control).
    UnsupportedOperands,
}

/// Decodes the instruction at the start of `bytes` (at most 15 are looked at) for a guest
/// running with code-segment `bitness` (64 for a Linux kernel).
pub fn decode(bytes: &[u8], bitness: u32) -> Result<MmioInstruction, MmioDecodeError> {
    if !matches!(bitness, 16 | 32 | 64) {
        return Err(MmioDecodeError::BadBitness);
    }
    let bytes = &bytes[..bytes.len().min(MAX_INSTRUCTION_BYTES)];
    if bytes.is_empty() {
        return Err(MmioDecodeError::Truncated);
    }
    let mut decoder =
        Decoder::try_new(bitness, bytes, DecoderOptions::NONE).map_err(|_| MmioDecodeError::BadBitness)?;
    let instruction = decoder.decode();
    if instruction.is_invalid() {
        return Err(match decoder.last_error() {
            iced_x86::DecoderError::NoMoreBytes => MmioDecodeError::Truncated,
            _ => MmioDecodeError::Invalid,
        });
    }
    if instruction.has_lock_prefix() || instruction.has_rep_prefix() || instruction.has_repne_prefix() {
        return Err(MmioDecodeError::Unsupported(instruction.mnemonic()));
    }
    let extension = match instruction.mnemonic() {
        Mnemonic::Mov => Extension::None,
        Mnemonic::Movzx => Extension::Zero,
        Mnemonic::Movsx | Mnemonic::Movsxd => Extension::Sign,
        other => return Err(MmioDecodeError::Unsupported(other)),
    };
    decode_mov(&instruction, extension)
}

fn decode_mov(instruction: &Instruction, extension: Extension) -> Result<MmioInstruction, MmioDecodeError> {
    if instruction.op_count() != 2 {
        return Err(MmioDecodeError::UnsupportedOperands);
    }
    let size = instruction.memory_size().size();
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(MmioDecodeError::UnsupportedOperands);
    }
    let size = size as u8;
    let length = instruction.len() as u8;
    let (direction, operand) = match (instruction.op0_kind(), instruction.op1_kind()) {
        (OpKind::Memory, OpKind::Register) if extension == Extension::None => {
            (MmioDirection::Write, MmioOperand::Register(gpr(instruction.op1_register())?))
        }
        (OpKind::Register, OpKind::Memory) => {
            (MmioDirection::Read, MmioOperand::Register(gpr(instruction.op0_register())?))
        }
        (OpKind::Memory, immediate) if extension == Extension::None && is_immediate(immediate) => {
            let value = instruction.try_immediate(1).map_err(|_| MmioDecodeError::UnsupportedOperands)?;
            (MmioDirection::Write, MmioOperand::Immediate(value & width_mask(size)))
        }
        _ => return Err(MmioDecodeError::UnsupportedOperands),
    };
    Ok(MmioInstruction { size, direction, operand, extension, length })
}

fn is_immediate(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate32to64
            | OpKind::Immediate64
    )
}

fn gpr(register: Register) -> Result<Gpr, MmioDecodeError> {
    if !register.is_gpr() {
        return Err(MmioDecodeError::UnsupportedOperands);
    }
    let high_byte = matches!(register, Register::AH | Register::CH | Register::DH | Register::BH);
    let index = register.full_register().number().wrapping_sub(Register::RAX.number());
    if index > 15 {
        return Err(MmioDecodeError::UnsupportedOperands);
    }
    Ok(Gpr { index: index as u8, width: register.size() as u8, high_byte })
}

const fn width_mask(width: u8) -> u64 {
    match width {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

fn sign_extend(value: u64, size: u8) -> u64 {
    let shift = 64 - 8 * u32::from(size.clamp(1, 8));
    (((value << shift) as i64) >> shift) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(index: u8, width: u8) -> MmioOperand {
        MmioOperand::Register(Gpr { index, width, high_byte: false })
    }

    #[test]
    fn writel_and_readl_forms() {
        // mov [rdi], eax
        let i = decode(&[0x89, 0x07], 64).unwrap();
        assert_eq!(
            i,
            MmioInstruction {
                size: 4,
                direction: MmioDirection::Write,
                operand: reg(0, 4),
                extension: Extension::None,
                length: 2
            }
        );
        // mov eax, [rdi+0x10]
        let i = decode(&[0x8B, 0x47, 0x10], 64).unwrap();
        assert_eq!((i.size, i.direction, i.operand, i.length), (4, MmioDirection::Read, reg(0, 4), 3));
        // mov r9, [rax] (REX.WR)
        let i = decode(&[0x4C, 0x8B, 0x08], 64).unwrap();
        assert_eq!((i.size, i.operand, i.length), (8, reg(9, 8), 3));
        // mov [rsi], r12b? -> 44 88 26
        let i = decode(&[0x44, 0x88, 0x26], 64).unwrap();
        assert_eq!((i.size, i.direction, i.operand), (1, MmioDirection::Write, reg(12, 1)));
        // mov word [rdx], cx (66 89 0a)
        let i = decode(&[0x66, 0x89, 0x0A], 64).unwrap();
        assert_eq!((i.size, i.operand, i.length), (2, reg(1, 2), 3));
    }

    #[test]
    fn immediate_stores_are_truncated_to_the_access() {
        // mov dword [rax], 0xdeadbeef  (c7 00 ef be ad de)
        let i = decode(&[0xC7, 0x00, 0xEF, 0xBE, 0xAD, 0xDE], 64).unwrap();
        assert_eq!((i.size, i.operand, i.length), (4, MmioOperand::Immediate(0xDEAD_BEEF), 6));
        // mov qword [rax], -1 (48 c7 00 ff ff ff ff): sign-extended to 64 bits
        let i = decode(&[0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF], 64).unwrap();
        assert_eq!((i.size, i.operand), (8, MmioOperand::Immediate(u64::MAX)));
        // mov byte [rbx], 0x41 (c6 03 41)
        let i = decode(&[0xC6, 0x03, 0x41], 64).unwrap();
        assert_eq!(i.write_value(|_| panic!("no register read")), Some(0x41));
    }

    #[test]
    fn moffs_and_high_byte_registers() {
        // mov eax, [abs 0xfee00020] in 32-bit code: a1 20 00 e0 fe
        let i = decode(&[0xA1, 0x20, 0x00, 0xE0, 0xFE], 32).unwrap();
        assert_eq!((i.size, i.direction, i.operand, i.length), (4, MmioDirection::Read, reg(0, 4), 5));
        // mov [rcx], ah (88 21)
        let i = decode(&[0x88, 0x21], 64).unwrap();
        let gpr = Gpr { index: 0, width: 1, high_byte: true };
        assert_eq!(i.operand, MmioOperand::Register(gpr));
        assert_eq!(i.write_value(|r| if r == 0 { 0x1234 } else { 0 }), Some(0x12));
        // mov ah, [rcx] (8a 21)
        let i = decode(&[0x8A, 0x21], 64).unwrap();
        assert_eq!(i.complete_read(0xFFFF_0000_1111_2222, 0x99), Some((0, 0xFFFF_0000_1111_9922)));
    }

    #[test]
    fn read_completion_follows_register_write_rules() {
        let old = 0x1111_2222_3333_4444;
        // 32-bit load zero-extends.
        let i = decode(&[0x8B, 0x07], 64).unwrap();
        assert_eq!(i.complete_read(old, 0xAABB_CCDD_EEFF_0011), Some((0, 0xEEFF_0011)));
        // 16-bit load keeps the upper bits: mov ax, [rdi] (66 8b 07)
        let i = decode(&[0x66, 0x8B, 0x07], 64).unwrap();
        assert_eq!(i.complete_read(old, 0xABCD), Some((0, 0x1111_2222_3333_ABCD)));
        // movzx eax, byte [rdi] (0f b6 07)
        let i = decode(&[0x0F, 0xB6, 0x07], 64).unwrap();
        assert_eq!((i.size, i.extension), (1, Extension::Zero));
        assert_eq!(i.complete_read(old, 0x80), Some((0, 0x80)));
        // movsx rax, word [rdi] (48 0f bf 07)
        let i = decode(&[0x48, 0x0F, 0xBF, 0x07], 64).unwrap();
        assert_eq!(i.complete_read(old, 0x8001), Some((0, 0xFFFF_FFFF_FFFF_8001)));
        assert_eq!(i.write_value(|_| 0), None);
        let w = decode(&[0x89, 0x07], 64).unwrap();
        assert_eq!(w.complete_read(old, 0), None);
        assert_eq!(w.write_value(|_| old), Some(0x3333_4444));
    }

    #[test]
    fn refuses_everything_but_mov() {
        // add [rax], eax (01 00)
        assert_eq!(decode(&[0x01, 0x00], 64), Err(MmioDecodeError::Unsupported(Mnemonic::Add)));
        // rep movsb (f3 a4)
        assert!(matches!(decode(&[0xF3, 0xA4], 64), Err(MmioDecodeError::Unsupported(_))));
        // mov eax, ebx: no memory operand (89 d8)
        assert_eq!(decode(&[0x89, 0xD8], 64), Err(MmioDecodeError::UnsupportedOperands));
        // mov [rax], ds (8c 18)
        assert_eq!(decode(&[0x8C, 0x18], 64), Err(MmioDecodeError::UnsupportedOperands));
        // mov cr3, rax (0f 22 d8)
        assert_eq!(decode(&[0x0F, 0x22, 0xD8], 64), Err(MmioDecodeError::UnsupportedOperands));
        // truncated: mov eax, [rdi+disp32] missing the displacement
        assert_eq!(decode(&[0x8B, 0x87, 0x00], 64), Err(MmioDecodeError::Truncated));
        assert_eq!(decode(&[], 64), Err(MmioDecodeError::Truncated));
        assert_eq!(decode(&[0x89, 0x07], 8), Err(MmioDecodeError::BadBitness));
        // ud2
        assert!(decode(&[0x0F, 0x0B], 64).is_err());
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20), mode in 0usize..4) {
            let bitness = [16, 32, 64, 7][mode];
            if let Ok(i) = decode(&bytes, bitness) {
                proptest::prop_assert!(matches!(i.size, 1 | 2 | 4 | 8));
                proptest::prop_assert!(i.length >= 1 && usize::from(i.length) <= bytes.len().min(15));
                let _ = i.write_value(|r| u64::from(r) * 0x0101_0101);
                let _ = i.complete_read(u64::MAX, u64::MAX);
            }
        }
    }
}
