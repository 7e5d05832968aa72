#!/bin/sh
# Hostile Linux writer: garbage into ${rhchan}'s writer pages (indices, lengths, data), in
# ${rhrounds} bursts ${rhinterval} ms apart. The RT reader must report errors and keep running.
chan=${rhchan:-commands} rounds=${rhrounds:-200} interval=${rhinterval:-20}
if rhlink scribble "$chan" --rounds "$rounds" --interval-ms "$interval"; then
    echo "RHTEST-RESULT ok"
else
    echo "RHTEST-RESULT fail: scribbling on $chan"
    exit 1
fi
