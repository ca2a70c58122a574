"""Where cloudvip's time goes in its slow rows (realistic latency), for the optimisation
round: one plain run split into time the cloud took (the emulator's request log: each
request's interval, their union) and time in the agent, then one run under strace for
what the agent does besides: TCP connections (each to :443 is a TLS handshake), name
lookups, processes, sleeps, the syscalls that took longest. OCI requests are each one
RSA-2048 signature; a federation (auth) request also generates a session key."""
import collections
import dataclasses
import os
import re
import subprocess

from jobs import ACTIONS, JOBS

ROWS = {
    "lan": ["validate-all", "start (elsewhere)", "start (here)"],
    "gce": ["start (elsewhere)", "monitor depth 10", "stop"],
    "gce+public": ["start (elsewhere)"],
    "oci": ["start (elsewhere)", "start (here)", "monitor depth 10"],
    "oci+public": ["start (elsewhere)"],
    "aws-vip": ["start (elsewhere)"],
    "aws-eip": ["start (elsewhere)"],
}
STRACE = "/usr/bin/strace"
PERF = "/usr/bin/perf"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def union_ms(intervals):
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def timeline(log):
    """(text, ms the cloud took) from the request log of one run."""
    if not log:
        return "no request reached the cloud", 0.0
    t0 = min(e["t_ms"] - e["duration_ms"] for e in log)
    spans = [(e["t_ms"] - e["duration_ms"] - t0, e["t_ms"] - t0) for e in log]
    steps = []
    for e in sorted(log, key=lambda e: e["t_ms"] - e["duration_ms"]):
        name = e.get("api") or f"{e['method']} {e['path']}"
        steps.append(f"{e['t_ms'] - e['duration_ms'] - t0:.0f}+{e['duration_ms']} "
                     f"{name} {e.get('status')}")
    return "; ".join(steps), union_ms(spans)


LINE = re.compile(r"(\d+)\s+[\d.]+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")


def parse_strace(path):
    """What one `strace -f -ttt -T` trace says the agent did (threads and children too;
    sleeps of the main process only, not of the background announcer)."""
    conns, files = collections.Counter(), collections.Counter()
    execs = threads = procs = 0
    asleep = 0.0
    count, spent = collections.Counter(), collections.defaultdict(float)
    main = None
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            pid, call, rest = int(m.group(1)), m.group(2) or m.group(3), m.group(4)
            main = pid if main is None else main
            d = re.search(r"<([\d.]+)>$", rest)
            secs = float(d.group(1)) if d else 0.0
            spent[call] += secs
            if m.group(3):
                count[call] += 1
            if call == "connect" and m.group(3):
                port = re.search(r"htons\((\d+)\)", rest)
                addr = re.search(r'inet_addr\("([\d.]+)"\)', rest)
                if port:
                    conns[f"{addr.group(1) if addr else '?'}:{port.group(1)}"] += 1
            elif call in ("openat", "open") and m.group(3):
                p = re.search(r'"([^"]+)"', rest)
                if p:
                    name = p.group(1)
                    if name.startswith("/etc/ssl/certs/") and name != SYSTEM_BUNDLE:
                        name = "/etc/ssl/certs/* (files of the directory)"
                    if name.startswith(("/etc/", "/run/resource-agents")):
                        name = re.sub(r"[0-9a-f]{8,}", "…", name)
                        files[re.sub(r"(?<=[.-])\d+(?=[.-]|$)", "N", name)] += 1
            elif call == "execve" and m.group(3):
                execs += 1
            elif call in ("clone", "clone3", "fork", "vfork") and m.group(3):
                if "CLONE_THREAD" in rest:
                    threads += 1
                else:
                    procs += 1
            if call in ("nanosleep", "clock_nanosleep") and pid == main:
                asleep += secs
    return {"conns": conns, "files": files, "execs": execs, "threads": threads,
            "procs": procs, "asleep_ms": asleep * 1000, "count": count, "spent": spent}


def strace_text(t):
    conns = t["conns"]
    tls = sum(n for a, n in conns.items() if a.endswith(":443"))
    dns = sum(n for a, n in conns.items() if a.endswith(":53"))
    top = ", ".join(f"{c} {t['spent'][c] * 1000:.1f} ms ({t['count'][c]}×)" for c in
                    sorted(t["spent"], key=t["spent"].get, reverse=True)[:5])
    links = ", ".join(f"{a} ×{n}" for a, n in sorted(conns.items())) or "none"
    files = ", ".join(f"{p} ×{n}" for p, n in sorted(t["files"].items())) or "-"
    return (f"strace: connections {links} ({tls} TLS handshakes, {dns} DNS queries); "
            f"files: {files}; {t['execs']} exec, {t['procs']} child processes, "
            f"{t['threads']} threads; main process asleep {t['asleep_ms']:.0f} ms; "
            f"{sum(t['count'].values())} syscalls, most time in: {top} (strace slows "
            "each syscall).")


def perf_text(ctx, tool, action, extra, need_state, vip):
    """Where the CPU goes, from a symbolised build if bench/run.sh --perf made one."""
    binary = ctx.cloudvip_prof
    if not (ctx.args.perf and os.path.exists(binary) and os.path.exists(PERF)):
        return None
    ctx.prepare(tool, need_state, [vip])
    data = os.path.join(ctx.workdir, f"perf-{tool.job}-{action}.data")
    prof = dataclasses.replace(tool, argv=[binary])
    r = ctx.run(prof, action, [vip], extra=extra,
                wrap=[PERF, "record", "-q", "-F", "20000", "-g", "-o", data, "--"])
    if r["rc"][0] not in (0, 7):
        return None
    def report(sort, limit):
        return subprocess.run([PERF, "report", "-i", data, "--stdio", "--no-children", "-q",
                               "--sort", sort, "--percent-limit", limit],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.splitlines()
    dsos = []
    for line in report("dso", "1"):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if m:
            dsos.append(f"{os.path.basename(m.group(2))} {float(m.group(1)):.0f}%")
    syms = []
    for line in report("dso,symbol", "1.5"):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)", line)
        if m:
            sym = " ".join(w for w in m.group(4).split() if w != "-")
            sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
            syms.append(f"{float(m.group(1)):.1f}% {sym[:70]}" + (" [kernel]"
                                                                  if m.group(3) == "k" else ""))
    if not dsos:
        return None
    return (f"perf (CPU samples at 20 kHz): by binary {', '.join(dsos)}; hottest symbols: "
            f"{'; '.join(syms[:12])}.")


def run(ctx, tool):
    out = []
    actions = {a[0]: a for a in ACTIONS}
    for akey in ROWS.get(tool.job, []):
        _, action, extra, need_state = actions[akey]
        vip = JOBS[tool.job].vips(1)[0]
        ctx.prepare(tool, need_state, [vip])
        if ctx.sim:
            ctx.sim.clear_log()
        r = ctx.run(tool, action, [vip], extra=extra)
        _, log = ctx.requests()
        steps, cloud_ms = timeline(log)
        wall = r["wall_ms"]
        lines = [f"wall {wall:,.0f} ms = {cloud_ms:,.0f} ms while a request was at the "
                 f"cloud ({len(log)} requests) + {wall - cloud_ms:,.0f} ms in the agent "
                 f"(CPU {r['user_ms'] + r['sys_ms']:.1f} ms).", "",
                 f"requests (start ms + duration, in order): {steps}.", ""]
        oci = [e for e in log if e.get("cloud") == "oci" and e.get("service") != "metadata"]
        if oci:
            fed = sum(e.get("service") == "auth" for e in oci)
            lines += [f"RSA: {len(oci)} signed OCI requests = {len(oci)} RSA-2048 "
                      f"signatures; {fed} federation call(s) (each also a session-key "
                      "generation).", ""]
        if os.path.exists(STRACE):
            ctx.prepare(tool, need_state, [vip])
            trace = os.path.join(ctx.workdir, f"strace-{tool.job}-{action}.txt")
            s = ctx.run(tool, action, [vip], extra=extra,
                        wrap=[STRACE, "-f", "-qq", "-ttt", "-T", "-o", trace])
            if s["rc"][0] in (0, 7):
                lines.append(strace_text(parse_strace(trace)))
        p = perf_text(ctx, tool, action, extra, need_state, vip)
        if p:
            lines += ["", p]
        out.append({"kind": "explain", "profile": ctx.profile.name, "job": tool.job,
                    "tool": tool.name, "action": akey, "wall_ms": wall,
                    "cloud_ms": cloud_ms, "requests": len(log), "text": "\n".join(lines)})
    return out
