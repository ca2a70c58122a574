"""Time each OCF action of an agent (wall time from fork to exit, peak RSS from wait4).

Run by bench/run.sh inside a network namespace that has eth0 with 10.66.0.1/24.
"""
import os
import statistics
import subprocess
import sys
import time

CLOUDVIP, RUNS = sys.argv[1], int(sys.argv[2])
IPADDR2 = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2"
BASE = {
    "OCF_ROOT": "/usr/lib/ocf",
    "OCF_RESOURCE_INSTANCE": "bench",
    "OCF_RESKEY_CRM_meta_timeout": "20000",
    "OCF_RESKEY_ip": "10.66.0.100",
    "OCF_RESKEY_cidr_netmask": "32",
    "OCF_RESKEY_nic": "eth0",
    "HA_LOGFILE": "/dev/null",
    "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
}
AGENTS = {
    # one announcement each (IPaddr2 refuses 0), sent in the background by both
    "cloudvip": (CLOUDVIP, {"OCF_RESKEY_cloud": "none", "OCF_RESKEY_arp_count": "1"}),
    "IPaddr2": (IPADDR2, {"OCF_RESKEY_arp_count": "1"}),
}


def run(agent, action, extra=None, rss=False):
    """Exit code and wall ms; with rss=True under GNU time for the peak RSS (KiB) instead.

    The child's ru_maxrss would include this Python process's memory (the fork happens
    before exec), so the RSS comes from /usr/bin/time, whose own fork is small."""
    path, params = AGENTS[agent]
    env = dict(BASE, **params, **(extra or {}))
    argv = [path, action]
    if rss:
        argv = ["/usr/bin/time", "-f", "%M", "-o", "/dev/stdout", "-q"] + argv
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ms = (time.perf_counter_ns() - t0) / 1e6
    value = int(p.stdout.split()[-1]) if rss else ms
    return value, p.returncode


def measure(agent, action, before=None, extra=None, want=0):
    times, rss = [], []
    for i in range(RUNS):
        if before:
            run(agent, before)
        ms, rc = run(agent, action, extra)
        if rc != want:
            sys.exit(f"{agent} {action}: exit {rc}, expected {want}")
        times.append(ms)
        if i < 5:
            if before:
                run(agent, before)
            rss.append(run(agent, action, extra, rss=True)[0])
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], max(rss)


CASES = [
    # (label, action, run before each measurement, extra env, expected exit)
    ("meta-data", "meta-data", None, None, 0),
    ("validate-all", "validate-all", None, None, 0),
    ("probe (stopped)", "monitor", "stop", {"OCF_RESKEY_CRM_meta_interval": "0"}, 7),
    ("start", "start", "stop", None, 0),
    ("monitor (running)", "monitor", "start", {"OCF_RESKEY_CRM_meta_interval": "10000"}, 0),
    ("stop", "stop", "start", None, 0),
]

print(f"{RUNS} runs per action; wall time from spawn to exit (median, p95); peak RSS of the agent process (GNU time)\n")
head = f"| {'action':<18} | {'cloudvip median':>15} | {'p95':>7} | {'RSS':>7} | {'IPaddr2 median':>14} | {'p95':>8} | {'RSS':>7} |"
print(head)
print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
for label, action, before, extra, want in CASES:
    a = measure("cloudvip", action, before, extra, want)
    b = measure("IPaddr2", action, before, extra, want)
    print(
        f"| {label:<18} | {a[0]:>12.2f} ms | {a[1]:>4.1f} ms | {a[2]/1024:>4.1f} MB "
        f"| {b[0]:>11.2f} ms | {b[1]:>5.1f} ms | {b[2]/1024:>4.1f} MB |"
    )
run("cloudvip", "stop")
run("IPaddr2", "stop")
