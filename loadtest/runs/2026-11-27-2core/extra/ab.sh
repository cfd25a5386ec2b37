#!/bin/bash
# ab.sh NAME ENV... : start a fresh pair, run healthz c32 5s, ping c32 5s, ping c256 5s
n=$1; shift
bash /tmp/lx/down.sh /tmp/lx/cur >/dev/null 2>&1
env "$@" python3 /tmp/lx/up.py /tmp/lx/cur > /dev/null
echo "== $n $(uptime | sed 's/.*load/load/')"
/tmp/lx/meas.sh /tmp/lx/cur healthz --closed-loop --concurrency 32 --duration-s 5 | grep "leadx cpu"
for c in 32 256; do /tmp/lx/meas.sh /tmp/lx/cur ping --closed-loop --concurrency $c --duration-s 5 --vertical auto_insurance --lead-offset $((c*1000)) | grep "ping@max  \|leadx cpu"; done
