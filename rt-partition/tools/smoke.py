#!/usr/bin/env python3
"""Runs a partition ELF on a CPU emulator (Unicorn) with the hypervisor's side of the
contract faked: load PT_LOAD segments, write a BootInfo page and guest page tables, enter
at the ELF entry with rdi = BootInfo GPA, rsi = 0, rsp = stack top, and serve VMCALLs
(Unicorn has no VMX, so VMCALL stops emulation as an invalid instruction; the harness
handles it and resumes after it). Host-side smoke test of the SDK's start-up code, heap,
console, time and ports without Bochs.

    python3 -m venv /tmp/uvenv && /tmp/uvenv/bin/pip install unicorn pyelftools
    /tmp/uvenv/bin/python rt-partition/tools/smoke.py ELF [--name NAME] [--lines N]
        [--channel NAME:KIND:ROLE:MSG:DEPTH] [--channel-file PATH] [--restart-count N]
        [--vcpus N] [--expect lines|halt|fault] [--seconds S]

KIND is sampling|queuing, ROLE writer|reader. With --channel-file the channel memory is
loaded from and saved to PATH, so a writer run and a reader run can be chained.
With --vcpus N every vCPU is its own Unicorn instance over the same memory, run round
robin in slices (a vCPU that yields until u64::MAX is parked).
Exit status 0 when the run ended the expected way (N console lines, or halt/fault when
--expect says so); the transcript of console lines and hypervisor events is printed.
"""
import argparse
import ctypes
import os
import struct
import sys
import time

from elftools.elf.elffile import ELFFile
from unicorn import Uc, UcError, UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL, UC_HOOK_MEM_UNMAPPED
from unicorn.x86_const import (UC_X86_REG_RAX, UC_X86_REG_RDI, UC_X86_REG_RSI, UC_X86_REG_RDX,
                               UC_X86_REG_R10, UC_X86_REG_RIP, UC_X86_REG_RSP)

BOOT_INFO_GPA = 0x1000
PAGE_TABLES_GPA = 0x2000
IMAGE_BASE = 0x100000
STACK_BYTES = 0x10000
CHANNEL_WINDOW_GPA = 0xC000_0000
MAGIC = int.from_bytes(b"RHBOOTI1", "little")
# hallows_abi::bootinfo::BOOT_INFO_VERSION; version 2's persistent region and args follow
# the 16 channel slots and stay zero here (none).
BOOT_INFO_VERSION = 2
PAGE = 0x1000
TSC_HZ = 1_000_000_000
CLASSES = ["memory_violation", "io_violation", "msr_violation", "forbidden_instruction",
           "triple_fault", "deadline_miss", "panic", "unknown_exit"]


def region_bytes(queuing, msg, depth):
    """hallows_abi::channel::region_bytes: 64-byte header, slots of 16 bytes of metadata
    plus the message rounded up to 64 bytes (depth of them, or 4 for sampling), whole
    pages, then the reader page."""
    slot = (16 + msg + 63) // 64 * 64
    writer = (0x40 + (depth if queuing else 4) * slot + PAGE - 1) // PAGE * PAGE
    return writer + PAGE


def name_field(name):
    raw = name.encode()[:32]
    return raw + b"\0" * (32 - len(raw)), len(raw)


def boot_info(name, ram, image_end, channels, restart_count, vcpus):
    nm, nlen = name_field(name)
    head = struct.pack("<QII32sIIQQQQQII", MAGIC, BOOT_INFO_VERSION, 3, nm, nlen, vcpus, ram, image_end,
                       ram - vcpus * STACK_BYTES, TSC_HZ, 0, restart_count, len(channels))
    assert len(head) == 104
    body = b""
    for ch in channels:
        cn, clen = name_field(ch["name"])
        body += struct.pack("<32sIIIIIIQQ", cn, clen, 2 if ch["queuing"] else 1,
                            1 if ch["writer"] else 0, ch["msg"], ch["depth"], 0, ch["gpa"], ch["bytes"])
    return head + body


def page_tables(ram):
    """PML4 -> PDPT -> PD with 2 MiB pages over RAM, as the hypervisor builds them."""
    pml4 = struct.pack("<Q", (PAGE_TABLES_GPA + PAGE) | 3) + b"\0" * (PAGE - 8)
    pdpt = struct.pack("<Q", (PAGE_TABLES_GPA + 2 * PAGE) | 3) + b"\0" * (PAGE - 8)
    pd = b"".join(struct.pack("<Q", (i << 21) | 0x83) for i in range(ram >> 21))
    return pml4 + pdpt + pd + b"\0" * (PAGE - len(pd))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    ap.add_argument("--name", default="hello")
    ap.add_argument("--ram", type=lambda s: int(s, 0), default=4 << 20)
    ap.add_argument("--lines", type=int, default=5)
    ap.add_argument("--channel", action="append", default=[])
    ap.add_argument("--channel-file")
    ap.add_argument("--restart-count", type=int, default=0)
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--expect", choices=["lines", "halt", "fault"], default="lines")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()

    # Guest memory lives in host buffers so that every vCPU (one Unicorn instance each)
    # sees the same RAM and channels. Page 0 stays unmapped, as in the guest.
    ram = ctypes.create_string_buffer(args.ram)
    blocks = [(PAGE, args.ram - PAGE, ctypes.addressof(ram) + PAGE)]
    with open(args.elf, "rb") as f:
        elf = ELFFile(f)
        entry = elf.header.e_entry
        image_end = 0
        for seg in elf.iter_segments():
            if seg.header.p_type != "PT_LOAD":
                continue
            data = seg.data()
            ctypes.memmove(ctypes.addressof(ram) + seg.header.p_vaddr, data, len(data))
            image_end = max(image_end, seg.header.p_vaddr + seg.header.p_memsz)
    image_end = (image_end + PAGE - 1) // PAGE * PAGE

    channels, gpa = [], CHANNEL_WINDOW_GPA
    for spec in args.channel:
        cname, kind, role, msg, depth = spec.split(":")
        q = kind == "queuing"
        size = region_bytes(q, int(msg), int(depth))
        channels.append(dict(name=cname, queuing=q, writer=role == "writer", msg=int(msg),
                             depth=int(depth), gpa=gpa, bytes=size))
        gpa += size
    window = ctypes.create_string_buffer(max(gpa - CHANNEL_WINDOW_GPA, PAGE))
    if channels:
        blocks.append((CHANNEL_WINDOW_GPA, gpa - CHANNEL_WINDOW_GPA, ctypes.addressof(window)))
    if args.channel_file and os.path.exists(args.channel_file) and channels:
        saved = open(args.channel_file, "rb").read()[: len(window)]
        ctypes.memmove(window, saved, len(saved))

    info = boot_info(args.name, args.ram, image_end, channels, args.restart_count, args.vcpus)
    ctypes.memmove(ctypes.addressof(ram) + BOOT_INFO_GPA, info, len(info))
    tables = page_tables(args.ram)
    ctypes.memmove(ctypes.addressof(ram) + PAGE_TABLES_GPA, tables, len(tables))

    cpus = []
    for vcpu in range(args.vcpus):
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        for base, size, host in blocks:
            uc.mem_map_ptr(base, size, UC_PROT_ALL, host)
        uc.reg_write(UC_X86_REG_RDI, BOOT_INFO_GPA)
        uc.reg_write(UC_X86_REG_RSI, vcpu)
        uc.reg_write(UC_X86_REG_RSP, args.ram - vcpu * STACK_BYTES)
        fault = {}

        def unmapped(_uc, access, address, size, value, data):
            data["gpa"] = address
            return False

        uc.hook_add(UC_HOOK_MEM_UNMAPPED, unmapped, fault)
        cpus.append(dict(uc=uc, rip=entry, fault=fault, parked=False, vcpu=vcpu))

    t0 = time.monotonic_ns()
    state = dict(lines=0, partial=b"", outcome=None, hypercalls=0)

    def hypercall(cpu):
        uc = cpu["uc"]
        state["hypercalls"] += 1
        nr, a0, a1, a2 = (uc.reg_read(r) for r in (UC_X86_REG_RAX, UC_X86_REG_RDI, UC_X86_REG_RSI, UC_X86_REG_RDX))
        status, value = 0, 0
        if nr == 2:  # ConsoleWrite
            state["partial"] += bytes(uc.mem_read(a0, a1))
            while b"\n" in state["partial"]:
                line, state["partial"] = state["partial"].split(b"\n", 1)
                print(f"[{args.name}] {line.decode(errors='replace')}")
                state["lines"] += 1
            if args.expect == "lines" and state["lines"] >= args.lines:
                state["outcome"] = "lines"
        elif nr == 1:  # Version
            value = 1
        elif nr == 3:  # Yield
            if a0 == 2**64 - 1:
                cpu["parked"] = True
        elif nr == 4:  # TimeNow
            value = time.monotonic_ns() - t0
        elif nr == 5:  # PartitionState
            value = 1
        elif nr == 6:  # ReportFault
            msg = bytes(uc.mem_read(a1, a2)).decode(errors="replace")
            print(f"HM: {args.name}: {CLASSES[a0] if a0 < len(CLASSES) else a0}: {msg}")
        elif nr == 8:  # Halt
            print(f"HM: {args.name}: halted, code {a0}")
            state["outcome"] = "halt"
        elif nr != 0:
            status = 1
        uc.reg_write(UC_X86_REG_RAX, status)
        uc.reg_write(UC_X86_REG_RDX, value)
        cpu["rip"] += 3

    deadline = time.monotonic() + args.seconds
    while state["outcome"] is None and time.monotonic() < deadline:
        runnable = [c for c in cpus if not c["parked"]]
        if not runnable:
            state["outcome"] = "parked"
            break
        for cpu in runnable:
            uc = cpu["uc"]
            try:
                # Round robin: a slice of instructions per vCPU.
                uc.emu_start(cpu["rip"], 0, count=200_000)
                cpu["rip"] = uc.reg_read(UC_X86_REG_RIP)
                continue
            except UcError as e:
                cpu["rip"] = uc.reg_read(UC_X86_REG_RIP)
                if uc.mem_read(cpu["rip"], 3) != b"\x0f\x01\xc1":
                    state["outcome"] = (f"fault: {e} on vCPU {cpu['vcpu']} at rip {cpu['rip']:#x} "
                                        f"gpa {cpu['fault'].get('gpa', 0):#x}")
                    break
            hypercall(cpu)
            if state["outcome"]:
                break
    if args.channel_file and channels:
        open(args.channel_file, "wb").write(window.raw[: gpa - CHANNEL_WINDOW_GPA])
    outcome = state["outcome"]
    print(f"outcome: {outcome or 'timeout'} after {state['hypercalls']} hypercalls")
    ok = (outcome or "").split(":")[0] == args.expect
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
