#!/bin/sh
# Receives ${rhcount} messages from ${rhchan}; they must carry consecutive 8-byte counters
# (none lost, none repeated, in order).
chan=${rhchan:-readings} count=${rhcount:-20} timeout=${rhtimeout:-60000}
rhlink list
if rhlink recv "$chan" --count "$count" --sequence --timeout-ms "$timeout"; then
    echo "RHTEST-RESULT ok"
else
    echo "RHTEST-RESULT fail: receiving $count in-order messages from $chan"
    exit 1
fi
