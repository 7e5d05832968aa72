#!/bin/sh
# SerpentLog throughput from Linux (scripts/bench-serpentlog --bochs): `serpentlog bench`
# produces ${slcount} generated records of ${slsize} bytes to `events` partition 0, then
# consumes them back in order, and prints records per second for each phase.
count=${slcount:-1000} size=${slsize:-100}
if serpentlog --timeout-ms 5000 bench events --count "$count" --size "$size"; then
    echo "RHTEST-RESULT ok"
else
    echo "RHTEST-RESULT fail: serpentlog bench"
    exit 1
fi
