#!/bin/sh
# SerpentLog from Linux: produces ${slcount} generated records of ${slsize} bytes (`rec`
# and a number from 1) to ${sltopic} partition ${slpartition}, then consumes them back from the
# first one produced and checks the counters (none lost, repeated or reordered).
topic=${sltopic:-events} partition=${slpartition:-0} count=${slcount:-1000} size=${slsize:-16}
client=${slclient:-linux} timeout=${sltimeout:-2000}
serpentlog --client "$client" topics
produced=$(serpentlog --client "$client" --timeout-ms "$timeout" produce "$topic" --partition "$partition" --count "$count" --size "$size") || {
    echo "RHTEST-RESULT fail: producing $count records to $topic"
    exit 1
}
echo "$produced"
# "produced N records to TOPIC partition P offsets FIRST..=LAST"
first=$(echo "$produced" | sed -n 's/.* offsets \([0-9]*\)\.\.=.*/\1/p')
last=$(serpentlog --client "$client" --timeout-ms "$timeout" consume "$topic" --partition "$partition" --from "${first:-0}" \
    --count "$count" --sequence | tail -n 1) || {
    echo "RHTEST-RESULT fail: consuming $count records of $topic in order"
    exit 1
}
echo "SERPENTLOG-LAST $last"
# What the RT producer (the `sensor` partition) has published so far, when the broker has
# that topic: its first readings (at most three; the rest is not waited for).
if serpentlog --client "$client" topics | grep -q '^topic sensor '; then
    serpentlog --client "$client" --timeout-ms "$timeout" consume sensor | head -n 3 | sed 's/^/SERPENTLOG-SENSOR /'
fi
serpentlog --client "$client" topics | sed 's/^/SERPENTLOG-TOPICS /'
if [ "$last" = "offset $((${first:-0} + count - 1)): counter $count" ]; then
    echo "RHTEST-RESULT ok"
else
    echo "RHTEST-RESULT fail: last record read was '$last'"
    exit 1
fi
