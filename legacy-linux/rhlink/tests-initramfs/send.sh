#!/bin/sh
# Sends ${rhcount} messages of ${rhsize} bytes (8-byte counter from 0, zero padded) on ${rhchan}.
chan=${rhchan:-commands} count=${rhcount:-20} size=${rhsize:-16}
rhlink list
if rhlink send "$chan" --count "$count" --size "$size"; then
    echo "RHTEST-RESULT ok"
else
    echo "RHTEST-RESULT fail: sending $count messages on $chan"
    exit 1
fi
