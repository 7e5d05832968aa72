# Reboots Linux at once (`reboot -f`, no clean shutdown). In a Linux partition the
# hypervisor takes the reset request as a `panic` health event: with `on panic restart`
# it boots the same kernel and initramfs again in scrubbed RAM, and /init runs this
# script again, so a table with `restarts 1 per ...` shows one restart, then the budget
# cutting the loop (tests/run linux-restart).
echo "RHTEST-REBOOTING $(cut -d' ' -f1 /proc/uptime)"
# Let the UART drain before the reset cuts the line short.
sleep 1
reboot -f
echo "RHTEST-RESULT fail: reboot -f returned"
