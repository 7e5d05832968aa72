#!/bin/sh
# The demo's Linux side (configs/demo.pt, `rhtest=demo`; /init has printed LINUX-INIT-OK): the default /init's markers
# (tests/run demo checks them), then the hybrid bridge at work: the channels Linux sees,
# the sensor's latest reading, three commands that the RT partition `hello` answers, and
# the operator's view of the machine (`rhctl list`, `rhctl stats sensor`).
grep '^processor' /proc/cpuinfo
echo "LINUX-CPUS $(grep -c '^processor' /proc/cpuinfo)"
free -m
if command -v rhlink >/dev/null; then
    echo "demo: the channels of this partition (PCI functions 1af4:1110):"
    rhlink list
    echo "demo: the sensor's latest reading:"
    rhlink recv sensor_feed --count 1
    for command in status ping "what time is it"; do
        echo "$command" | rhlink send commands
        answer=""
        tries=0
        while [ $tries -lt 100 ] && [ "$answer" != "hello: $command" ]; do
            usleep 20000
            answer=$(rhlink recv answers --count 1 2>/dev/null)
            tries=$((tries + 1))
        done
        echo "demo: sent \`$command\` to hello, it answered \`$answer\`"
    done
fi
if command -v rhctl >/dev/null; then
    echo "demo: the partitions as the operator sees them (rhctl list; this Linux has privileges manage):"
    rhctl list
    echo "demo: the sensor's counters (rhctl stats sensor):"
    rhctl stats sensor
    # /init powers off right after this script: let the console (115200 baud) drain first.
    sleep 2
fi
echo LINUX-INIT-DONE
