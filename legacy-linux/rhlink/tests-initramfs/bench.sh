#!/bin/sh
# Measures ${rhchan} from the Linux side (sends when Linux writes it, receives otherwise).
chan=${rhchan:-readings} count=${rhcount:-1000} size=${rhsize:-8}
if rhlink bench "$chan" --count "$count" --size "$size"; then
    echo "RHTEST-RESULT ok"
else
    echo "RHTEST-RESULT fail: bench on $chan"
    exit 1
fi
