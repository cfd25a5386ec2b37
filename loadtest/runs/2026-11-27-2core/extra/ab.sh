#!/bin/bash
# Run from the repository root; scripts live beside this file.
# ab.sh NAME ENV... : start a fresh pair, run healthz c32 5s, ping c32 5s, ping c256 5s
n=$1; shift
bash $(dirname "$0")/down.sh ${RUN:-/tmp/lx-run} >/dev/null 2>&1
env "$@" python3 $(dirname "$0")/up.py ${RUN:-/tmp/lx-run} > /dev/null
echo "== $n $(uptime | sed 's/.*load/load/')"
$(dirname "$0")/meas.sh ${RUN:-/tmp/lx-run} healthz --closed-loop --concurrency 32 --duration-s 5 | grep "leadx cpu"
for c in 32 256; do $(dirname "$0")/meas.sh ${RUN:-/tmp/lx-run} ping --closed-loop --concurrency $c --duration-s 5 --vertical auto_insurance --lead-offset $((c*1000)) | grep "ping@max  \|leadx cpu"; done
