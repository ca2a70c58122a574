"""The benchmark's world: network namespaces, the emulator, and the runner that starts a
tool on a node exactly as pacemaker-execd would (its environment only, `env -i`) under the
process-tree meter (bench/reaper.rs).

Topology (as tests/netns.rs): nodes 1 and 2 (eth0 02:66:00:00:00:0i, 10.66.0.i/24, default
route via the cloud) and the cloud (10.66.0.254/24 + 169.254.169.254) on a bridge that lives
in a namespace of its own; the root namespace is never touched. Every run gets a private
mount namespace in which only the machine's own files a user would set up differ:
/etc/hosts (the clouds' real names = the emulator), /etc/resolv.conf (nameserver 127.0.0.1,
so a stray DNS query fails at once and stays on the node), the trust stores the clients
read (the system bundle plus the emulator's CA), /root (the AWS CLI's ~/.aws/config with
the region) and /run/resource-agents (one directory per node, kept across runs as a
node's is).
"""
import json
import os
import select
import shutil
import subprocess
import time
import urllib.request

EXECD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAMES = [
    "www.googleapis.com", "compute.googleapis.com", "oauth2.googleapis.com",
    "iaas.us-ashburn-1.oraclecloud.com", "auth.us-ashburn-1.oraclecloud.com",
    "ec2.eu-west-1.amazonaws.com", "sts.eu-west-1.amazonaws.com", "sts.amazonaws.com",
]
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def sh(*argv, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stdout.strip()}")
    return p.stdout


def mac(i):
    return f"02:66:00:00:00:{i:02x}"


class Lab:
    """Namespaces for nodes 1..n and the cloud; `close()` ends what runs inside by PID."""

    def __init__(self, tag, n=2):
        self.tag, self.bridge, self.nodes = tag, f"{tag}-br", []
        self.cloud = f"{tag}-cloud"
        try:
            sh("ip", "netns", "add", self.bridge)
            sh("ip", "-n", self.bridge, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.bridge, "link", "set", "br0", "type", "bridge",
               "stp_state", "0", "forward_delay", "0")
            sh("ip", "-n", self.bridge, "link", "set", "br0", "up")
            for i in range(1, n + 1):
                ns = f"{tag}-{i}"
                self._host(ns, f"p{i}", mac(i), [f"10.66.0.{i}/24"])
                self.nodes.append(ns)
            self._host(self.cloud, "pcloud", "02:66:00:00:00:fe",
                       ["10.66.0.254/24", "169.254.169.254/32"])
            for ns in self.nodes:
                sh("ip", "-n", ns, "route", "add", "default", "via", "10.66.0.254")
        except Exception:
            self.close()
            raise

    def _host(self, ns, port, hw, addrs):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.bridge, "link", "add", port, "type", "veth", "peer", "name",
           "eth0", "netns", ns)
        sh("ip", "-n", ns, "link", "set", "eth0", "address", hw)
        sh("ip", "-n", self.bridge, "link", "set", port, "master", "br0", "up")
        for a in addrs:
            sh("ip", "-n", ns, "addr", "add", a, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def description(self):
        return {"bridge": self.bridge, "nodes": self.nodes, "cloud": self.cloud}

    def close(self):
        for ns in self.nodes + [self.cloud, self.bridge]:
            out = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True).stdout
            for pid in out.split():
                if int(pid) != os.getpid():
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def addrs(ns):
    """The IPv4 addresses on eth0 of namespace `ns`, without prefix."""
    out = sh("ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0")
    return [w.split("/")[0] for line in out.splitlines()
            for i, w in enumerate(line.split()) if i > 0 and line.split()[i - 1] == "inet"]


def drop_addrs(ns, ips):
    """Removes each of `ips` from eth0 of `ns` (whatever prefix or label it has). One at a
    time, reading the list again: deleting a primary address can take its secondaries."""
    ips = set(ips)
    for _ in range(1000):
        out = sh("ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0")
        cidrs = [w[w.index("inet") + 1] for w in (line.split() for line in out.splitlines())]
        todo = [c for c in cidrs if c.split("/")[0] in ips]
        if not todo:
            return
        sh("ip", "-n", ns, "addr", "del", todo[0], "dev", "eth0", check=False)


def reset_node(ns, i, rundir):
    """A node as booted: only 10.66.0.i/24 on eth0, an empty /run/resource-agents."""
    out = sh("ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0")
    others = [w[w.index("inet") + 1].split("/")[0] for w in
              (line.split() for line in out.splitlines())]
    drop_addrs(ns, [a for a in others if a != f"10.66.0.{i}"])
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)


class Sim:
    """cloudvip-sim in the cloud namespace (this process runs there), bounded in time."""

    def __init__(self, binary, world_toml, tls_dir, workdir, name, max_seconds):
        path = os.path.join(workdir, f"world-{name}.toml")
        with open(path, "w") as f:
            f.write(world_toml)
        self.log = open(os.path.join(workdir, f"sim-{name}.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--config", path, "--tls-cert", f"{tls_dir}/server.pem",
             "--tls-key", f"{tls_dir}/server.key", "--max-seconds", str(max_seconds)],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError(f"cloudvip-sim did not start: see {self.log.name}")
        self.endpoints = json.loads(line)
        self.admin_url = self.endpoints["admin"]
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with self._opener.open(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw.strip() else None

    def clear_log(self):
        self.admin("DELETE", "/admin/log")

    def log_entries(self):
        return self.admin("GET", "/admin/log")["entries"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def execd_env(agent_type, node_name, params, logfile, extra=None):
    """What pacemaker-execd passes an OCF agent (pacemaker 2.1, PCMK_logfacility=none)."""
    env = {
        "PATH": EXECD_PATH, "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": "vip", "OCF_RESOURCE_TYPE": agent_type,
        "OCF_RESOURCE_PROVIDER": "heartbeat", "OCF_RESKEY_crm_feature_set": "3.16.2",
        "OCF_RESKEY_CRM_meta_timeout": "60000", "OCF_RESKEY_CRM_meta_on_node": node_name,
        "PCMK_logfacility": "none", "PCMK_logfile": logfile, "HA_logfile": logfile,
        "PCMK_debug": "0", "HA_debug": "0", "PCMK_service": "pacemaker-execd",
    }
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    env.update(extra or {})
    return env


class Runner:
    """Runs jobs on a node namespace in a private mount namespace under the reaper."""

    def __init__(self, reaper, workdir, ca_pem, trust_files):
        self.reaper, self.workdir, self.seq = reaper, workdir, 0
        self.hosts = os.path.join(workdir, "hosts")
        with open(self.hosts, "w") as f:
            f.write("127.0.0.1 localhost\n169.254.169.254 metadata.google.internal\n")
            f.write("".join(f"10.66.0.254 {n}\n" for n in NAMES))
        self.resolv = os.path.join(workdir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        # Every client trusts the machine's bundle plus the emulator's CA, so each parses
        # a realistic store, not one certificate.
        self.bundle = os.path.join(workdir, "bundle.pem")
        with open(self.bundle, "w") as f:
            f.write(open(SYSTEM_BUNDLE).read() + open(ca_pem).read())
        self.trust = sorted(set(trust_files) | {SYSTEM_BUNDLE})
        self.home = os.path.join(workdir, "root")
        os.makedirs(os.path.join(self.home, ".aws"), exist_ok=True)
        with open(os.path.join(self.home, ".aws", "config"), "w") as f:
            f.write("[default]\nregion = eu-west-1\n")

    def rundir(self, ns):
        d = os.path.join(self.workdir, "run", ns)
        os.makedirs(d, exist_ok=True)
        return d

    def logfile(self, ns):
        return os.path.join(self.workdir, f"agent-{ns}.log")

    def run(self, ns, jobs, sample=False, wrap=None):
        """`jobs`: [(env, argv)], all started at once. Returns the reaper's JSON plus each
        job's output under "out". `wrap` prefixes every argv (e.g. strace)."""
        self.seq += 1
        base = os.path.join(self.workdir, "runs", f"{self.seq:05d}")
        os.makedirs(os.path.dirname(base), exist_ok=True)
        spec, outs = [], []
        for k, (env, argv) in enumerate(jobs):
            out = f"{base}-{k}.out"
            outs.append(out)
            spec.append("job")
            spec += [f"env {key}={val}" for key, val in env.items()]
            spec += [f"arg {a}" for a in (wrap or []) + argv]
            spec.append(f"out {out}")
        with open(base + ".spec", "w") as f:
            f.write("\n".join(spec) + "\n")
        mounts = [(self.hosts, "/etc/hosts"), (self.resolv, "/etc/resolv.conf"),
                  (self.home, "/root"), (self.rundir(ns), "/run/resource-agents")]
        mounts += [(self.bundle, t) for t in self.trust]
        script = "set -e; mount --make-rprivate /; " + "".join(
            f"mount --bind '{a}' '{b}'; " for a, b in mounts)
        # The reaper is a child of this shell, not its exec: a process's children's
        # usage (the mounts') survives exec and would be counted.
        script += f"'{self.reaper}' '{base}.spec' '{base}.json'" + (
            " --sample" if sample else "")
        p = subprocess.run(["ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c", script],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"reaper on {ns} failed ({p.returncode}): {p.stdout}")
        with open(base + ".json") as f:
            res = json.load(f)
        res["out"] = []
        for o in outs:
            with open(o, errors="replace") as f:
                res["out"].append(f.read())
        return res


def python_says(python, code):
    p = subprocess.run([python, "-c", code], env={"PATH": EXECD_PATH},
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{python} -c {code!r}: {p.stderr}")
    return p.stdout.strip()


def need(path, what):
    if not os.path.exists(path):
        raise SystemExit(f"bench: {path} is missing: {what} (run scripts/setup-deps.sh as root)")
    return path


def wait_until(pred, secs, step=0.05):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def which(cmd):
    return shutil.which(cmd, path=EXECD_PATH)
