#!/usr/bin/env python3
"""Checks partition ELF images against what the hypervisor's loader relies on: ELF64
little-endian x86-64 executable (ET_EXEC), no PT_INTERP or PT_DYNAMIC, the first PT_LOAD at
IMAGE_BASE_GPA (0x100000), every PT_LOAD at or above it, and the entry inside an executable
PT_LOAD. Prints one line per image (file size, loaded span, entry); exit status 1 if any fails.
Standard library only.

    python3 rt-partition/tools/check_elf.py target/x86_64-unknown-none/release/hello ...
"""
import os
import struct
import sys

IMAGE_BASE = 0x100000
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
PF_X = 1


def check(path):
    data = open(path, "rb").read()
    problems = []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return ["not an ELF64 little-endian file"], 0, 0
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", data, 16)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    if e_type != 2:
        problems.append(f"type {e_type}, not ET_EXEC (PIE?)")
    if e_machine != 62:
        problems.append(f"machine {e_machine}, not x86-64")
    loads = []
    for i in range(e_phnum):
        p_type, p_flags, _, p_vaddr, _, _, p_memsz, _ = struct.unpack_from("<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type in (PT_DYNAMIC, PT_INTERP):
            problems.append("dynamic segments present")
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_memsz, p_flags))
    if not loads:
        problems.append("no PT_LOAD")
        return problems, 0, e_entry
    if loads[0][0] != IMAGE_BASE:
        problems.append(f"first PT_LOAD at {loads[0][0]:#x}, not {IMAGE_BASE:#x}")
    if any(v < IMAGE_BASE for v, _, _ in loads):
        problems.append("a PT_LOAD below the image base")
    if not any(v <= e_entry < v + m and f & PF_X for v, m, f in loads):
        problems.append(f"entry {e_entry:#x} not in an executable PT_LOAD")
    span = max(v + m for v, m, _ in loads) - IMAGE_BASE
    return problems, span, e_entry


def main():
    failed = False
    for path in sys.argv[1:]:
        problems, span, entry = check(path)
        verdict = "ok" if not problems else "BAD: " + "; ".join(problems)
        print(f"{os.path.basename(path):<10} file {os.path.getsize(path):>7} B  loaded span {span:>7} B  "
              f"entry {entry:#x}  {verdict}")
        failed |= bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
