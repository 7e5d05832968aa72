#!/bin/sh
# The hybrid-bridge test inside Linux (configs/tests/bridge.pt, `tests/run bridge`): /init
# runs this for `rhtest=bridge`. Every result is a `BRIDGE-...` line on the console, which
# tests/run checks. The RT partition `peer` (guests/bridge-peer) streams READINGS readings
# `reading 0000001`.. on `readings` and answers each request on `requests` with
# `reply: REQUEST` on the sampling channel `replies`. Last, Linux turns hostile and
# scribbles over the requests channel.
READINGS=200
REQUESTS=20
echo BRIDGE-START

# 1. The channel functions as PCI sees them (vendor, device, subsystem, BAR0 and BAR2).
channels=""
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    ids="$(cat "$d/vendor"):$(cat "$d/device") sub $(cat "$d/subsystem_vendor"):$(cat "$d/subsystem_device")"
    bar0=$(sed -n 1p "$d/resource" | cut -d' ' -f1,2)
    bar2=$(sed -n 3p "$d/resource" | cut -d' ' -f1,2)
    echo "BRIDGE-PCI ${d##*/} $ids bar0 $bar0 bar2 $bar2"
    [ "$(cat "$d/vendor"):$(cat "$d/device")" = "0x1af4:0x1110" ] && channels="$channels $d"
done
echo "BRIDGE-FUNCTIONS $(echo $channels | wc -w)"
# `lspci -n` where the initramfs has it; Debian's busybox-static has no lspci applet, so
# otherwise the same listing (slot, class, vendor:device, revision) from sysfs.
if command -v lspci >/dev/null; then
    lspci -n 2>&1 | sed 's/^/BRIDGE-LSPCI /'
else
    for d in /sys/bus/pci/devices/*; do
        [ -e "$d/class" ] || continue
        class=$(cat "$d/class") vendor=$(cat "$d/vendor") device=$(cat "$d/device")
        revision=$(cat "$d/revision" 2>/dev/null || echo 0x00)
        slot=${d##*/}
        echo "BRIDGE-LSPCI ${slot#0000:} $(echo "$class" | cut -c3-6): ${vendor#0x}:${device#0x} (rev ${revision#0x})"
    done
fi

# 2. Linux tries to move every BAR and to switch memory decoding off, through sysfs
#    config writes (the kernel forwards them to configuration space): all read back
#    unchanged.
moved=0
for d in $channels; do
    before=$(od -An -tx4 -j4 -N36 "$d/config" | tr -s ' \n' ' ')
    for offset in 16 20 24 28 32 36 48; do
        printf '\000\000\000\320' | dd of="$d/config" bs=1 seek=$offset count=4 conv=notrunc 2>/dev/null
    done
    printf '\000\000' | dd of="$d/config" bs=1 seek=4 count=2 conv=notrunc 2>/dev/null
    after=$(od -An -tx4 -j4 -N36 "$d/config" | tr -s ' \n' ' ')
    if [ "$before" = "$after" ]; then
        echo "BRIDGE-BARS-KEPT ${d##*/}: $after"
    else
        echo "BRIDGE-BARS-MOVED ${d##*/}: before $before after $after"
        moved=$((moved + 1))
    fi
done
[ $moved -eq 0 ] && [ -n "$channels" ] && echo BRIDGE-BARS-FIXED

# 3. The channels by name and direction.
if ! command -v rhlink >/dev/null; then
    echo "BRIDGE-NO-RHLINK: rhlink is not in this initramfs"
    echo BRIDGE-DONE
    exit 0
fi
rhlink list 2>&1 | sed 's/^/BRIDGE-LIST /'

# 3b. Mapping past a channel's BARs (one page more than BAR0 and BAR2 hold) is refused:
#     nothing beyond the function's own pages can be reached through it.
past=0
for name in readings requests replies; do
    rhlink probe $name 2>&1 | sed 's/^/BRIDGE-PROBE /'
    rhlink probe $name >/dev/null 2>&1 || past=$((past + 1))
done
[ $past -eq 0 ] && echo BRIDGE-MAP-PAST-REFUSED

# 4. Every reading, in order.
timeout 300 rhlink recv readings --count $READINGS >/tmp/readings 2>/tmp/readings.err
got=$(wc -l </tmp/readings)
i=1
while [ $i -le $READINGS ]; do
    printf 'reading %07d\n' $i
    i=$((i + 1))
done >/tmp/expected
if cmp -s /tmp/readings /tmp/expected; then
    echo "BRIDGE-READINGS $got in order"
else
    echo "BRIDGE-READINGS-BAD got $got lines: $(head -c 200 /tmp/readings.err)"
    diff /tmp/expected /tmp/readings 2>&1 | head -n 5 | sed 's/^/BRIDGE-READINGS-DIFF /'
fi

# 5. Requests, one at a time, each answered (the sampling reply shows its text).
answered=0
i=1
while [ $i -le $REQUESTS ]; do
    echo "request $i" | rhlink send requests 2>&1 | sed 's/^/BRIDGE-SEND /'
    tries=0
    while [ $tries -lt 200 ]; do
        reply=$(rhlink recv replies --count 1 2>/dev/null)
        [ "$reply" = "reply: request $i" ] && break
        tries=$((tries + 1))
        usleep 20000
    done
    if [ "$reply" = "reply: request $i" ]; then
        answered=$((answered + 1))
    else
        echo "BRIDGE-REPLY-BAD request $i: got '$reply'"
    fi
    i=$((i + 1))
done
echo "BRIDGE-REPLIES $answered of $REQUESTS"

# 6. A hostile writer: garbage (indices, lengths, data) into the requests channel's writer
#    pages. The RT reader reports errors and keeps running; its register block still says
#    so afterwards.
rhlink scribble requests --rounds 50 --interval-ms 20 2>&1 | sed 's/^/BRIDGE-SCRIBBLE /'
sleep 1
rhlink list 2>&1 | grep '^requests' | sed 's/^/BRIDGE-AFTER-SCRIBBLE /'
echo BRIDGE-DONE
