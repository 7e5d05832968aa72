#!/usr/bin/env bash
# Builds every guest for x86_64-unknown-none and checks what the hypervisor's loader relies
# on: a static ELF64 executable (no PT_INTERP, no PT_DYNAMIC) whose first PT_LOAD starts at
# IMAGE_BASE_GPA (0x100000) and whose entry lies in an executable PT_LOAD. Prints sizes.
# With SMOKE_PYTHON pointing at a Python that has `unicorn` and `pyelftools`, it also runs
# the guests on the emulator harness (tools/smoke.py) and checks their console output.
set -euo pipefail
cd "$(dirname "$0")/../.."
guests=(hello periodic logger rogue bench)
pkgs=()
for g in "${guests[@]}"; do pkgs+=(-p "$g"); done
cargo build "${pkgs[@]}" --target x86_64-unknown-none --release
out="${CARGO_TARGET_DIR:-target}/x86_64-unknown-none/release"
elfs=()
for g in "${guests[@]}"; do elfs+=("$out/$g"); done
python3 rt-partition/tools/check_elf.py "${elfs[@]}"

if [ -n "${SMOKE_PYTHON:-}" ]; then
    smoke() { "$SMOKE_PYTHON" rt-partition/tools/smoke.py "$@"; }
    expect() { # expect PATTERN -- smoke args...
        local pattern=$1; shift 2
        local log; log=$(smoke "$@" 2>&1) || { echo "$log"; echo "smoke run failed: $*"; exit 1; }
        grep -q -- "$pattern" <<<"$log" || { echo "$log"; echo "missing '$pattern': $*"; exit 1; }
        echo "smoke ok: $pattern"
    }
    expect "hello: tick 2" -- "$out/hello" --lines 3
    expect "vCPU 2 of 3 online" -- "$out/hello" --vcpus 3 --ram 0x800000 --lines 5
    expect "bench: done" -- "$out/bench" --name bench --expect halt
    expect "gpa 0x400000" -- "$out/rogue" --name rogue --expect fault
    expect "halted, code 101" -- "$out/rogue" --name rogue-panic --restart-count 1 --expect halt
    expect "rogue: restarted 1 times" -- "$out/rogue" --name rogue-panic --restart-count 1 --expect halt
    expect "UC_ERR_EXCEPTION" -- "$out/rogue" --name rogue-triple --expect fault
    chan=$(mktemp)
    rm -f "$chan"
    expect "count 0 jitter_max_ns" -- "$out/periodic" --name sensor --channel readings:queuing:writer:16:8 \
        --channel-file "$chan" --lines 3
    expect "logger: got reading 0 (1 new, 0 lost so far)" -- "$out/logger" --name logger \
        --channel readings:queuing:reader:16:8 --channel-file "$chan" --lines 3
    rm -f "$chan"
    expect "logger: heartbeat 1" -- "$out/logger" --name logger --lines 4
fi
