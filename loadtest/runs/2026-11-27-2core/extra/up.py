#!/usr/bin/env python3
"""Start a buyer fleet + leadx serve for manual runs. Usage: up.py DIR [fleet.json] [ping_timeout_ms] [buyer_ping_timeout_ms]
Writes DIR/env (LX_PORT, LX_PID, FLEET_PID, API_KEY)."""
import json, subprocess, sys, os, hashlib, socket, time, urllib.request
T = os.environ.get("T", "target/release")  # built with: cargo build --release --workspace
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
spec = sys.argv[2] if len(sys.argv) > 2 else None
pto = sys.argv[3] if len(sys.argv) > 3 else "300"
bto = sys.argv[4] if len(sys.argv) > 4 else "150"
if spec is None:
    bs = [dict(id=f"b{i}", latency=dict(kind="lognormal", median_ms=10+5*i, sigma=0.6), bid_rate=0.6,
               faults=dict(http_500=0.005, garbage=0.005, hang=0.001, reset=0.002), hang_ms=5000) for i in range(5)]
    bs.append(dict(id="direct", latency=dict(kind="lognormal", median_ms=10, sigma=0.4), accept_rate=1.0))
    spec = os.path.join(d, "fleet.json"); json.dump(dict(seed=1, buyers=bs), open(spec, "w"))
fl = subprocess.Popen([f"{T}/leadx-loadtest", "buyers", "--spec", spec, "--lifetime-s", "1500"], stdout=subprocess.PIPE, stderr=open(os.path.join(d,"fleet.log"),"w"))
line = json.loads(fl.stdout.readline())
buyers = line["buyers"]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
key = "lt_pub_manual_key_0123456789"; h = lambda x: hashlib.sha256(x.encode()).hexdigest()
import shutil; shutil.rmtree(os.path.join(d, "data"), ignore_errors=True); os.makedirs(os.path.join(d, "data"))
t = f'[server]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{d}/data"\nbody_bytes_max = 65536\n\n[admin]\ntoken_sha256 = "{h("admintok")}"\n\n'
t += f'[auction]\nping_timeout_ms = {pto}\npost_timeout_ms = 3000\nbid_ttl_s = 120\n\n'
for v in ["auto_insurance", "direct_sales"]:
    t += f'[[vertical]]\nid = "{v}"\nrequire_consent = true\ndedupe_window_days = 30\n\n'
t += f'[[publisher]]\nid = "loadtest"\napi_key_sha256 = "{h(key)}"\nrevenue_share = 0.8\nverticals = ["auto_insurance", "direct_sales"]\n\n'
for b in buyers:
    if b["id"] == "direct":
        t += f'[[buyer]]\nid = "direct"\nverticals = ["direct_sales"]\npost_url = "{b["post_url"]}"\nfixed_price = 5.00\npost_timeout_ms = 1000\npriority = 0\n\n'
    else:
        t += f'[[buyer]]\nid = "{b["id"]}"\nverticals = ["auto_insurance"]\nping_url = "{b["ping_url"]}"\npost_url = "{b["post_url"]}"\nping_timeout_ms = {bto}\npost_timeout_ms = 1000\npriority = 0\n\n'
open(os.path.join(d, "leadx.toml"), "w").write(t)
lx = subprocess.Popen([os.environ.get("LEADX", f"{T}/leadx"), "serve", "--config", f"{d}/leadx.toml"], stdout=open(f"{d}/leadx.log","w"), stderr=subprocess.STDOUT, start_new_session=True)
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1); break
    except Exception: time.sleep(0.1)
open(os.path.join(d, "env"), "w").write(f"LX_PORT={port}\nLX_PID={lx.pid}\nFLEET_PID={fl.pid}\nAPI_KEY={key}\n")
print(open(os.path.join(d, "env")).read())
