#!/bin/sh
# The management interface from Linux (tests/run manage-linux, configs/tests/manage.pt).
# First boot: `rhctl list` and `rhctl stats --json` (the harness checks them against the
# table), nosy's refusals in `rhctl events nosy`, `rhctl restart sensor` and the errors
# rhctl gives; then asks the RT partition `operator` (channel ops) to restart this Linux.
# Second boot (restart 1): lists again, then asks the operator to halt this Linux and
# start it 3 s later. Third boot (restart 2): lists and ends the test.
json() {
    # A JSON document on the console, 100 characters a line (the console cuts longer
    # lines): the harness joins the `MANAGE-JSON $1 ` lines again.
    rhctl stats --json >/tmp/stats.json || echo "RHTEST-RESULT fail: rhctl stats --json"
    fold -w 100 /tmp/stats.json | sed "s/^/MANAGE-JSON $1 /"
    echo
}
restarts=$(rhctl list | awk '$1 == "linux" { print $8 }')
restarts=${restarts%%/*}
echo "MANAGE-BOOT restarts=$restarts"
if [ "$restarts" = "1" ]; then
    # Restarted by the operator: now it halts this Linux and starts it again.
    echo "MANAGE-SECOND-BOOT"
    rhctl list | sed 's/^/MANAGE-LIST2 /'
    json second
    sleep 4
    echo "MANAGE-ASK-HALT-START"
    sleep 1
    echo "halt linux; sleep 3000; start linux" | rhlink send ops || echo "RHTEST-RESULT fail: rhlink send ops"
    sleep 120
    echo "RHTEST-RESULT fail: the operator did not halt Linux"
    exit 1
fi
if [ "$restarts" != "0" ]; then
    echo "MANAGE-THIRD-BOOT"
    rhctl list | sed 's/^/MANAGE-LIST3 /'
    echo "RHTEST-RESULT ok"
    exit 0
fi
rhctl list | sed 's/^/MANAGE-LIST /'
json first
rhctl events nosy | sed 's/^/MANAGE-EVENTS /'
rhctl restart sensor && echo "MANAGE-RESTART-SENSOR ok"
sleep 2
rhctl list | sed 's/^/MANAGE-LIST-AFTER /'
json after
rhctl restart nosuch >/tmp/err 2>&1; echo "MANAGE-ERR-UNKNOWN $? $(head -n 1 /tmp/err)"
rhctl restart linux >/tmp/err 2>&1; echo "MANAGE-ERR-SELF $? $(head -n 1 /tmp/err)"
rhctl frobnicate >/tmp/err 2>&1; echo "MANAGE-ERR-USAGE $?"
# Let the console drain (115200 baud) before this Linux is restarted under its output.
sleep 4
echo "MANAGE-ASK-OPERATOR"
sleep 1
echo "restart linux" | rhlink send ops || echo "RHTEST-RESULT fail: rhlink send ops"
# The operator's restart stops this Linux; should it not come, the test fails here.
sleep 120
echo "RHTEST-RESULT fail: the operator did not restart Linux"
exit 1
