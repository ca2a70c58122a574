"""The benchmark: cloudvip (release build) in every cloud and mode beside the agents it
replaces (IPaddr2, gcp-vpc-move-vip on the PyPI and Debian Google stacks, ocivip with
oci-cli, awsvip / awseip / aws-vpc-move-ip with the AWS CLI), unmodified, against
cloudvip-sim, at zero and at realistic latency. Run by bench/run.sh (see there).

It measures and asserts nothing about speed, but stops loudly when a tool answers an
action with the wrong exit code or leaves the cloud in the wrong state: a fast wrong
answer is not a result. Everything it starts lives in namespaces it creates and deletes.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import explain  # noqa: E402
import report  # noqa: E402
from clouds import CLOUDS  # noqa: E402
from jobs import ACTIONS, EXPECT, JOBS, PROFILES, VENVS, floor, tools  # noqa: E402
from lab import (NAMES, Lab, Runner, Sim, addrs, execd_env, need,  # noqa: E402
                 python_says, reset_node, sh)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_NAMES = {"none": ("node1", "node2"), "gce": ("node-a", "node-b"),
              "oci": ("node1", "node2"), "aws": ("node-a", "node-b")}
AUTH_SERVICES = {"oauth", "auth", "sts"}


class Failure(Exception):
    """A tool under test did the wrong thing: the run stops, loudly."""


def args_parser():
    a = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n\n")[0])
    a.add_argument("--runs", type=int, default=3, help="measured runs per cell (default 3; "
                   "one more unmeasured warm-up run names the largest process)")
    a.add_argument("--profiles", default="zero,real", help="latency profiles: zero,real")
    a.add_argument("--jobs", default=",".join(JOBS), help="jobs to run, or a cloud for all of its (default: all)")
    a.add_argument("--tools", default="", help="only tools whose name contains one of "
                   "these comma-separated words")
    a.add_argument("--scale", default="1,8,32", help="VIPs started at once on one NIC "
                   "(empty: no scale rows)")
    a.add_argument("--scale-runs", type=int, default=1, help="runs per scale cell")
    a.add_argument("--scale-profiles", default="real")
    a.add_argument("--no-explain", action="store_true",
                   help="skip the strace/timeline breakdown of cloudvip's slow rows")
    a.add_argument("--perf", action="store_true", help="also profile the slow rows' CPU "
                   "with perf on a symbolised build (run.sh builds target/bench-prof)")
    a.add_argument("--out", default=os.path.join(ROOT, "bench", "results"),
                   help="where the dated results go (default bench/results)")
    a.add_argument("--update-readme", action="store_true",
                   help="rewrite README.md's Performance table from this run")
    a.add_argument("--inner", help=argparse.SUPPRESS)
    return a


def cloudvip_clouds(cloudvip):
    """The cloud= values this cloudvip binary offers (from its meta-data)."""
    xml = subprocess.run([cloudvip, "meta-data"], stdout=subprocess.PIPE, text=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    m = re.search(r'<parameter name="cloud".*?<shortdesc[^>]*>([^<]*)<', xml, re.S)
    return set(re.findall(r"[a-z]+", m.group(1))) - {"cloud", "backend", "or"} if m else set()


class Ctx:
    """Everything a measurement needs; one per benchmark run."""

    def __init__(self, args, lab):
        self.args, self.lab_nodes, self.cloud_ns = args, lab["nodes"], lab["cloud"]
        self.root = ROOT
        # On tmpfs, as a node's /run is: on a disk under other I/O, the agents' state-file
        # renames stall for 100 ms and more.
        self.workdir = tempfile.mkdtemp(prefix="cloudvip-bench-", dir="/dev/shm")
        self.cloudvip = os.path.join(
            ROOT, os.environ.get("CLOUDVIP_BENCH_AGENT", "target/release/cloudvip"))
        self.cloudvip_prof = os.path.join(ROOT, os.environ.get(
            "CLOUDVIP_BENCH_PROF", "target/bench-prof/release/cloudvip"))
        self.sim_bin = os.path.join(ROOT, "target/release/cloudvip-sim")
        self.reaper = os.path.join(ROOT, "target/bench/reaper")
        for p in (self.cloudvip, self.sim_bin, self.reaper):
            need(p, "bench/run.sh builds it")
        self.venvs = os.environ.get("CLOUDVIP_TEST_CACHE", VENVS)
        self.cloudvip_clouds = cloudvip_clouds(self.cloudvip)
        self.tls = os.path.join(self.workdir, "tls")
        sh(self.sim_bin, "gen-tls", "--out-dir", self.tls, *NAMES, "10.66.0.254")
        google_py = need(f"{self.venvs}/venv-google/bin/python", "the PyPI Google venv")
        self.discovery_doc = need(python_says(google_py, (
            "import googleapiclient, os; print(os.path.join(os.path.dirname("
            "googleapiclient.__file__), 'discovery_cache', 'documents', "
            "'compute.v1.json'))")), "google-api-python-client's discovery document")
        self.runner = Runner(self.reaper, self.workdir, f"{self.tls}/ca.pem",
                             self.trust_files())
        self.sim = None
        self.profile = None
        self.results = []

    def trust_files(self):
        """Each client's CA bundle when started with `env -i`."""
        files = set()
        pythons = [("/usr/bin/python3", ["httplib2", "certifi"])]
        for v, mods in (("google", ["httplib2", "certifi"]), ("oci-cli", ["certifi"]),
                        ("aws", ["botocore"])):
            pythons.append((need(f"{self.venvs}/venv-{v}/bin/python", f"venv-{v}"), mods))
        code = {"httplib2": "import httplib2; print(httplib2.CA_CERTS)",
                "certifi": "import certifi; print(certifi.where())",
                "botocore": "from botocore.httpsession import get_cert_path; "
                            "print(get_cert_path(True))"}
        for py, mods in pythons:
            for m in mods:
                try:
                    files.add(os.path.realpath(python_says(py, code[m])))
                except RuntimeError:
                    pass  # that stack does not have the module: it cannot read its store
        return sorted(f for f in files if os.path.isfile(f))

    def node(self, job, i):
        return self.lab_nodes[i], NODE_NAMES[JOBS[job].cloud][i]

    def env(self, tool, vip, i=0, extra=None, instance="vip"):
        ns, name = self.node(tool.job, i)
        e = execd_env(tool.ocf_type, name, tool.env_params(vip), self.runner.logfile(ns),
                      extra)
        e["OCF_RESOURCE_INSTANCE"] = instance
        return e

    def run(self, tool, action, vips, i=0, extra=None, sample=False, wrap=None):
        ns, _ = self.node(tool.job, i)
        jobs = [(self.env(tool, v, i, extra, "vip" if len(vips) == 1 else f"vip{k}"),
                 tool.argv + [action]) for k, v in enumerate(vips)]
        return self.runner.run(ns, jobs, sample=sample, wrap=wrap)

    def cloudvip_on_node2(self, job, vips, action):
        t = next(t for t in tools(self) if t.name == "cloudvip" and t.job == job.key)
        r = self.run(t, action, vips, i=1)
        if any(rc != 0 for rc in r["rc"]):
            raise Failure(f"preparing {job.key}: cloudvip {action} on node 2 exited "
                          f"{r['rc']}:\n{r['out'][0][-2000:]}")

    def held(self, tool, vips):
        job = JOBS[tool.job]
        n = CLOUDS[job.cloud].held(self, job, vips)
        if tool.local and job.cloud != "none":
            here = set(addrs(self.lab_nodes[0]))
            n = min(n, sum(v in here for v in vips))
        return n

    def ensure_here(self, tool, vips):
        if self.held(tool, vips) == len(vips):
            return
        r = self.run(tool, "start", vips)
        if any(rc != 0 for rc in r["rc"]) or self.held(tool, vips) != len(vips):
            raise Failure(f"{tool.name} start (to prepare) exited {r['rc']}, holds "
                          f"{self.held(tool, vips)}/{len(vips)}:\n{r['out'][0][-3000:]}")

    def prepare(self, tool, need_state, vips):
        job = JOBS[tool.job]
        cloud = CLOUDS[job.cloud]
        if need_state == "elsewhere":
            cloud.quiesce(self)
            cloud.elsewhere(self, job, vips)
        elif need_state == "here":
            cloud.quiesce(self)
            self.ensure_here(tool, vips)
        cloud.quiesce(self)

    def requests(self):
        if not self.sim:
            return {"api": 0, "metadata": 0, "auth": 0, "other": 0, "server_ms": 0,
                    "apis": {}}, []
        log = self.sim.log_entries()
        c = {"api": 0, "metadata": 0, "auth": 0, "other": 0,
             "server_ms": sum(e.get("duration_ms") or 0 for e in log), "apis": {}}
        for e in log:
            name = e.get("api") or f"{e.get('service')} {e.get('method')}"
            c["apis"][name] = c["apis"].get(name, 0) + 1
            if e.get("api_call"):
                c["api"] += 1
            elif e.get("service") == "metadata":
                c["metadata"] += 1
            elif e.get("service") in AUTH_SERVICES:
                c["auth"] += 1
            else:
                c["other"] += 1
        return c, log


def agent_log_tail(ctx, ns, n=30):
    try:
        with open(ctx.runner.logfile(ns), errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def measure(ctx, tool, akey, action, extra, need_state):
    job = JOBS[tool.job]
    vip = job.vips(1)[0]
    want = tool.expect.get(akey, EXPECT.get(akey, 0))
    reps = []
    largest = None
    for rep in range(ctx.args.runs + 1):
        ctx.prepare(tool, need_state, [vip])
        if ctx.sim:
            ctx.sim.clear_log()
        r = ctx.run(tool, action, [vip], extra=extra, sample=(rep == 0))
        req, _ = ctx.requests()
        rc = r["rc"][0]
        if rc != want:
            raise Failure(f"{tool.name} [{job.key}] {akey}: exit {rc}, expected {want}\n"
                          f"--- output ---\n{r['out'][0][-3000:]}\n--- agent log ---\n"
                          f"{agent_log_tail(ctx, ctx.lab_nodes[0])}")
        if action == "start" and ctx.held(tool, [vip]) != 1:
            raise Failure(f"{tool.name} [{job.key}] {akey}: exit 0 but node 1 does not hold "
                          f"the VIP (cloud and node)\n{r['out'][0][-3000:]}")
        if action == "stop":
            left = (vip in addrs(ctx.lab_nodes[0])) if tool.local else ctx.held(tool, [vip])
            if left:
                raise Failure(f"{tool.name} [{job.key}] stop: exit 0 but the VIP is still "
                              f"served by node 1\n{r['out'][0][-3000:]}")
        if rep == 0:
            largest = r.get("largest")
            continue
        reps.append({"wall_ms": r["wall_ms"], "cpu_ms": r["user_ms"] + r["sys_ms"],
                     "user_ms": r["user_ms"], "sys_ms": r["sys_ms"],
                     "maxrss_kb": r["maxrss_kb"], "tail_ms": r["tail_ms"],
                     "left": r["left"], **req})
    f_ms, f_desc = floor(tool.job, akey, ctx.profile)
    return {"kind": "action", "profile": ctx.profile.name, "job": tool.job,
            "tool": tool.name, "anchor": tool.anchor, "action": akey,
            "argv": " ".join(tool.argv),
            "floor_ms": f_ms, "floor": f_desc, "largest": largest, "runs": reps}


def measure_scale(ctx, tool, n):
    job = JOBS[tool.job]
    vips = job.vips(n)
    out = []
    for _ in range(ctx.args.scale_runs):
        CLOUDS[job.cloud].quiesce(ctx)
        CLOUDS[job.cloud].elsewhere(ctx, job, vips)
        CLOUDS[job.cloud].quiesce(ctx)
        if ctx.sim:
            ctx.sim.clear_log()
        r = ctx.run(tool, "start", vips)
        req, _ = ctx.requests()
        cloud = CLOUDS[job.cloud].held(ctx, job, vips)
        here = set(addrs(ctx.lab_nodes[0]))
        local = sum(v in here for v in vips) if tool.local else None
        held = ctx.held(tool, vips)
        ok = sum(rc == 0 for rc in r["rc"])
        # Operations a timed-out agent left queued may still land: what the cloud holds
        # once everything settled.
        CLOUDS[job.cloud].quiesce(ctx)
        later = CLOUDS[job.cloud].held(ctx, job, vips)
        out.append({"wall_ms": r["wall_ms"], "cpu_ms": r["user_ms"] + r["sys_ms"],
                    "maxrss_kb": r["maxrss_kb"], "ok": ok, "held": held, "cloud": cloud,
                    "cloud_later": later, "local": local, "rcs": sorted(set(r["rc"])), "exit_ms": r["exit_ms"],
                    **req})
        if ok != n or held != n:
            bad = next((o for o, rc in zip(r["out"], r["rc"]) if rc != 0), "")
            print(f"  !! {tool.name} [{job.key}] {n} at once: {ok}/{n} exited 0; node 1 "
                  f"holds {cloud}/{n} in the cloud ({later}/{n} once settled)"
                  + (f", {local}/{n} on eth0" if local is not None else "")
                  + (f"; a failed one said: {bad.strip()[-300:]}" if bad else ""),
                  flush=True)
    return {"kind": "scale", "profile": ctx.profile.name, "job": tool.job,
            "tool": tool.name, "anchor": tool.anchor, "vips": n, "runs": out}


def selected_tools(ctx, job):
    words = [w for w in ctx.args.tools.split(",") if w]
    for t in tools(ctx):
        if t.job != job or (words and not any(w in t.name for w in words)):
            continue
        reason = t.when(ctx) if t.when else None
        if reason:
            ctx.results.append({"kind": "absent", "job": job, "tool": t.name,
                                "why": reason})
            continue
        yield t


def phase(ctx, profile, cloud, jobs):
    ctx.profile = profile
    c = CLOUDS[cloud]
    # A new cloud: nodes as booted (no VIP left by the last phase, no cached token).
    for i, ns in enumerate(ctx.lab_nodes, 1):
        reset_node(ns, i, ctx.runner.rundir(ns))
    world = c.world(profile, ctx)
    ctx.sim = None
    if world is not None:
        ctx.sim = Sim(ctx.sim_bin, world, ctx.tls, ctx.workdir, f"{profile.name}-{cloud}",
                      max_seconds=3600)
    try:
        if ctx.sim:
            for rule in c.faults(profile):
                ctx.sim.admin("POST", "/admin/faults", rule)
        for job in jobs:
            for tool in selected_tools(ctx, job):
                for akey, action, extra, need_state in ACTIONS:
                    t0 = time.monotonic()
                    res = measure(ctx, tool, akey, action, extra, need_state)
                    ctx.results.append(res)
                    w = statistics.median(r["wall_ms"] for r in res["runs"])
                    print(f"  {profile.name:4} {job:10} {tool.name:26} {akey:17} "
                          f"{w:9.1f} ms  ({time.monotonic() - t0:.0f} s)", flush=True)
                scale = [int(n) for n in ctx.args.scale.split(",") if n]
                if tool.scale and profile.name in ctx.args.scale_profiles.split(","):
                    for n in scale:
                        res = measure_scale(ctx, tool, n)
                        ctx.results.append(res)
                        w = statistics.median(r["wall_ms"] for r in res["runs"])
                        print(f"  {profile.name:4} {job:10} {tool.name:26} "
                              f"{n:2} at once      {w:9.1f} ms", flush=True)
                if (tool.name == "cloudvip" and profile.name == "real"
                        and not ctx.args.no_explain):
                    ctx.results += explain.run(ctx, tool)
    finally:
        if ctx.sim:
            ctx.sim.stop()
            ctx.sim = None


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"host": platform.node(), "kernel": platform.release(), "cpu": cpu,
            "cores": os.cpu_count(), "load_before": os.getloadavg()}


def inner(args):
    lab = json.loads(args.inner)
    ctx = Ctx(args, lab)
    started = time.time()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **machine(),
            "runs": args.runs, "scale_runs": args.scale_runs,
            "cloudvip": sh(ctx.cloudvip, "--version", check=False).strip(),
            "build": ("static musl" if "musl" in ctx.cloudvip else "glibc") + " release",
            "commit": subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                     stdout=subprocess.PIPE, text=True).stdout.strip(),
            "profiles": {p: vars(PROFILES[p]) for p in args.profiles.split(",")}}
    failure = None
    try:
        for pname in args.profiles.split(","):
            profile = PROFILES[pname]
            print(f"== {profile.title}", flush=True)
            for cloud in ("none", "gce", "oci", "aws"):
                jobs = [j for j in args.jobs.split(",") if JOBS[j].cloud == cloud]
                if jobs:
                    phase(ctx, profile, cloud, jobs)
    except Failure as e:
        failure = str(e)
    meta["load_after"] = os.getloadavg()
    meta["seconds"] = round(time.time() - started)
    if failure:
        print(f"\nbench: FAILED: {failure}", file=sys.stderr)
        print(f"bench: work directory kept: {ctx.workdir}", file=sys.stderr)
        return 1
    paths = report.write(ctx.results, meta, args.out)
    print(report.text(ctx.results, meta))
    print("written: " + ", ".join(paths))
    if args.update_readme:
        report.update_readme(os.path.join(ROOT, "README.md"), ctx.results, meta, paths[0])
        print("README.md: Performance section updated")
    subprocess.run(["rm", "-rf", ctx.workdir])
    lost = [r for r in ctx.results if r["kind"] == "scale" and not r["anchor"]
            and any(x["ok"] != r["vips"] or x["held"] != r["vips"] for x in r["runs"])]
    if lost:
        print("bench: FAILED: cloudvip lost VIPs in a scale row (see above)", file=sys.stderr)
        return 1
    return 0


def outer(args, argv):
    if os.geteuid() != 0:
        sys.exit("bench: run as root (network and mount namespaces)")
    for j in args.jobs.split(","):
        if j not in JOBS:
            sys.exit(f"bench: unknown job {j!r}: {', '.join(JOBS)}")
    for p in args.profiles.split(","):
        if p not in PROFILES:
            sys.exit(f"bench: unknown profile {p!r}: {', '.join(PROFILES)}")
    lab = Lab(f"cvb{os.getpid()}")
    try:
        p = subprocess.run(["ip", "netns", "exec", lab.cloud, sys.executable,
                            os.path.abspath(__file__), "--inner",
                            json.dumps(lab.description())] + argv)
        return p.returncode
    finally:
        lab.close()


def main():
    argv = sys.argv[1:]
    args = args_parser().parse_args(argv)
    # A cloud's name stands for all its jobs (`--jobs aws`).
    args.jobs = ",".join(k for j in args.jobs.split(",")
                         for k in ([x for x in JOBS if JOBS[x].cloud == j and j not in JOBS]
                                   or [j]))
    sys.exit(inner(args) if args.inner else outer(args, argv))


if __name__ == "__main__":
    main()
