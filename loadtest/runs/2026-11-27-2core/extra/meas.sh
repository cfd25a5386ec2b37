#!/bin/bash
# Run from the repository root; scripts live beside this file.
# meas.sh DIR MIX ARGS... : runs the driver, prints leadx cpu/request
d=$1; mix=$2; shift 2; . $d/env
T=${T:-target/release}  # built with: cargo build --release --workspace
c0=$($(dirname "$0")/cpu.sh $LX_PID); f0=$($(dirname "$0")/cpu.sh $FLEET_PID)
$T/leadx-loadtest run --target http://127.0.0.1:$LX_PORT --api-key $API_KEY --mix $mix "$@" --json $d/last.json > $d/last.txt 2>&1
c1=$($(dirname "$0")/cpu.sh $LX_PID); f1=$($(dirname "$0")/cpu.sh $FLEET_PID)
grep -A3 "^scenario" $d/last.txt | head -4
python3 - $d/last.json $((c1-c0)) $((f1-f0)) <<'PY'
import json,sys
r=json.load(open(sys.argv[1])); cpu=int(sys.argv[2]); fl=int(sys.argv[3])
s=r["scenarios"][0] if "scenarios" in r else r
oc=s.get("outcomes",{}); n=sum(v for k,v in oc.items())
print("outcomes",oc); print(f"leadx cpu {cpu/1e3:.0f} ms, {cpu/max(n,1):.1f} us/request over {n} requests; fleet cpu {fl/1e3:.0f} ms; driver {s.get('driver_cpu_us')}")
PY
grep Threads /proc/$LX_PID/status
