"""What the benchmark measures: the latency profiles, the jobs (one VIP move on one cloud,
the same for every tool that does it), the tools (cloudvip in each mode, the unmodified
anchors) and the floor of each job's actions.

Adding a row is one entry in TOOLS: e.g. cloudvip's AWS rows appear by themselves once
`cloudvip meta-data` offers cloud=aws (`when`).
"""
from dataclasses import dataclass, field

AGENTS = "/usr/lib/ocf/resource.d/heartbeat"
VENVS = "/opt/cloudvip-test"   # CLOUDVIP_TEST_CACHE overrides (scripts/setup-deps.sh)


@dataclass
class Profile:
    name: str
    title: str
    gce_pending_ms: int = 0      # each GCE operation: PENDING this long ...
    gce_running_ms: int = 0      # ... then RUNNING this long (queued per instance)
    gce_call_ms: int = 0         # added to each Compute API call
    oci_call_ms: int = 0         # added to each OCI Networking and federation call
    oci_public_assign_ms: int = 0
    aws_call_ms: int = 0         # added to each EC2 and STS call
    aws_lag_ms: int = 0          # Describe* may show the state this old
    aws_metadata_lag_ms: int = 0  # IMDS local-ipv4s & co. likewise

    @property
    def gce_op_ms(self):
        return self.gce_pending_ms + self.gce_running_ms


PROFILES = {
    "zero": Profile("zero", "zero latency (operations finish at once, no delay per call)"),
    # GCE's 50 ms per Compute call is an assumption (a round trip to a Google front end
    # from a VM); the operations' 0.3 + 0.7 s and OCI's 150 ms are issue 15's figures.
    "real": Profile(
        "real", "realistic latency (GCE 50 ms per Compute call, operations 0.3 s pending + "
        "0.7 s running; OCI 150 ms per call; AWS 100 ms per call, Describe* 0.5 s and IMDS "
        "1 s behind)",
        gce_pending_ms=300, gce_running_ms=700, gce_call_ms=50, oci_call_ms=150,
        oci_public_assign_ms=300, aws_call_ms=100, aws_lag_ms=500, aws_metadata_lag_ms=1000),
}

# The OCF actions, in the order they run (each leaves the state the next one needs).
ACTIONS = [
    # key, OCF action, extra environment, what it needs before each run
    ("meta-data", "meta-data", {}, None),
    ("validate-all", "validate-all", {}, None),
    ("probe", "monitor", {"OCF_RESKEY_CRM_meta_interval": "0"}, "elsewhere"),
    ("start (elsewhere)", "start", {}, "elsewhere"),
    ("start (here)", "start", {}, "here"),
    ("monitor", "monitor", {"OCF_RESKEY_CRM_meta_interval": "10000"}, "here"),
    ("monitor depth 10", "monitor",
     {"OCF_RESKEY_CRM_meta_interval": "60000", "OCF_CHECK_LEVEL": "10"}, "here"),
    ("stop", "stop", {}, "here"),
]
EXPECT = {"probe": 7}   # every other action: 0


@dataclass
class Job:
    """One thing to move. `vips(n)` gives n VIP values (for `param` of the tools)."""
    key: str
    cloud: str           # none | gce | oci | aws
    title: str
    vip_base: str        # a.b.c.d: VIP i is a.b.c.(d+i)
    public: str = ""     # the public address that follows, if any

    def vips(self, n=1):
        a, b, c, d = (int(x) for x in self.vip_base.split("."))
        return [f"{a}.{b}.{c}.{d + i}" for i in range(n)]


JOBS = {j.key: j for j in [
    Job("lan", "none", "LAN address (no cloud)", "10.66.0.100"),
    Job("gce", "gce", "GCE alias IP", "10.128.1.0"),
    Job("gce+public", "gce", "GCE alias IP + static external IP", "10.128.1.0",
        public="203.0.113.10"),
    Job("oci", "oci", "OCI secondary private IP", "10.0.1.100"),
    Job("oci+public", "oci", "OCI secondary private IP + reserved public IP", "10.0.1.100",
        public="203.0.113.10"),
    Job("aws-vip", "aws", "AWS secondary private IP", "10.0.1.100"),
    Job("aws-eip", "aws", "AWS Elastic IP", "203.0.113.11", public="203.0.113.11"),
    Job("aws-route", "aws", "AWS route-table overlay IP", "192.168.100.10"),
]}


@dataclass
class Tool:
    name: str
    job: str
    argv: list                  # the agent (and its interpreter), the action follows
    params: dict                # OCF_RESKEY_* (the VIP comes from `vip_param`)
    vip_param: str
    vip_format: str = "{}"
    anchor: bool = False        # something we did not write
    local: bool = True          # manages the address on the node
    scale: bool = True          # in the scale rows
    when: object = None         # callable(ctx) -> None or the reason the row is absent
    expect: dict = field(default_factory=dict)  # exit codes that differ from EXPECT

    def env_params(self, vip, extra=None):
        p = dict(self.params)
        p[self.vip_param] = self.vip_format.format(vip)
        p.update(extra or {})
        return p

    @property
    def ocf_type(self):
        return self.argv[-1].rsplit("/", 1)[-1]


def has_cloud(name):
    def check(ctx):
        return None if ctx.cloudvip_clouds and name in ctx.cloudvip_clouds else (
            f"cloudvip has no cloud={name} backend yet")
    return check


def venv(ctx, name, tool):
    return f"{ctx.venvs}/venv-{name}/bin/{tool}"


def tools(ctx):
    cv = [ctx.cloudvip]
    gce = {"cloud": "gce", "peer_label": "cluster=ha1"}
    oci = {"cloud": "oci"}
    aws_cli = venv(ctx, "aws", "aws")
    return [
        Tool("cloudvip", "lan", cv, {"cloud": "none", "cidr_netmask": "32", "nic": "eth0",
                                     "arp_count": "1"}, "ip"),
        # one announcement each (IPaddr2 refuses 0), sent in the background by both
        Tool("IPaddr2", "lan", [f"{AGENTS}/IPaddr2"],
             {"cidr_netmask": "32", "nic": "eth0", "arp_count": "1"}, "ip", anchor=True),
        Tool("cloudvip", "gce", cv, gce, "ip"),
        Tool("gcp-vpc-move-vip (PyPI)", "gce",
             [venv(ctx, "google", "python"), f"{AGENTS}/gcp-vpc-move-vip"], {},
             "alias_ip", "{}/32", anchor=True, local=False),
        Tool("gcp-vpc-move-vip (Debian)", "gce", [f"{AGENTS}/gcp-vpc-move-vip"], {},
             "alias_ip", "{}/32", anchor=True, local=False),
        Tool("cloudvip", "gce+public", cv, dict(gce, public_ip="vip-public"), "ip",
             scale=False),
        Tool("cloudvip", "oci", cv, oci, "ip"),
        # api_delay=0 as tests/anchors.rs runs it: its default sleeps 3 s per start/stop.
        Tool("ocivip (oci-cli)", "oci", [f"{AGENTS}/ocivip"],
             {"ocicli": venv(ctx, "oci-cli", "oci"), "api_delay": "0"},
             "secondary_private_ip", anchor=True),
        Tool("cloudvip", "oci+public", cv, dict(oci, public_ip="203.0.113.10"), "ip",
             scale=False),
        Tool("cloudvip", "aws-vip", cv, {"cloud": "aws"}, "ip", when=has_cloud("aws")),
        Tool("awsvip", "aws-vip", [f"{AGENTS}/awsvip"],
             {"awscli": aws_cli, "api_delay": "0"}, "secondary_private_ip",
             anchor=True, local=False),
        # mode=eip: the Elastic IP is the resource's ip, nothing on the node.
        Tool("cloudvip", "aws-eip", cv, {"cloud": "aws", "mode": "eip", "local_mode": "none"}, "ip",
             local=False, scale=False, when=has_cloud("aws")),
        Tool("awseip", "aws-eip", [f"{AGENTS}/awseip"],
             {"awscli": aws_cli, "api_delay": "0",
              "allocation_id": "eipalloc-0c10d00000000000f2"}, "elastic_ip",
             anchor=True, local=False, scale=False),
        Tool("cloudvip", "aws-route", cv,
             {"cloud": "aws", "mode": "route", "route_tables": "rtb-0c10d0000000000c1"}, "ip",
             scale=False, when=has_cloud("aws")),
        Tool("aws-vpc-move-ip", "aws-route", [f"{AGENTS}/aws-vpc-move-ip"],
             {"awscli": aws_cli, "routing_table": "rtb-0c10d0000000000c1",
              "interface": "eth0", "region": "eu-west-1"}, "ip", anchor=True, scale=False),
    ]


def floor(job, action, p):
    """(ms, what it is): the operations the job cannot avoid times their latency."""
    j = JOBS[job]
    if j.cloud == "gce":
        if action == "start (elsewhere)":
            # In sequence: find the holder (aggregatedList: its fingerprint too), patch it,
            # its operation, patch ours (our fingerprint read meanwhile), our operation.
            calls = 3 * p.gce_call_ms
            if j.public:
                # Per instance GCE runs one operation at a time (PENDING may overlap the
                # one running), across instances side by side. The holder's access-config
                # delete queues behind its alias removal and so runs while our alias add
                # does; our access-config add (after that delete) queues behind our alias
                # add: one RUNNING phase after it. Nothing shorter: our two ops run one
                # after the other, and the first can only start once one of the holder's
                # is DONE.
                return (2 * p.gce_op_ms + p.gce_running_ms + calls,
                        "3 calls + 2 ops for the alias; the holder's access-config delete "
                        "runs beside our alias add, our access-config add queues behind it "
                        "(+1 RUNNING phase)")
            return 2 * p.gce_op_ms + calls, ("3 calls (aggregatedList, 2 patches) + 2 ops: "
                                             "remove at the holder, add here")
        if action == "monitor depth 10":
            return p.gce_call_ms, "1 call: instances.get"
    if j.cloud == "oci":
        if action == "start (elsewhere)":
            # On a node Pacemaker has probed: the probe may learn the VNIC's subnet
            # (GetVnic), which never changes, so the start only finds and moves.
            n = 3 if j.public else 2
            return n * p.oci_call_ms, (
                "2 calls: ListPrivateIps, UpdatePrivateIp (the probe learnt the subnet)"
                + (" + 1 to confirm the public IP followed" if j.public else ""))
        if action == "start (here)" and j.public:
            return 2 * p.oci_call_ms, ("2 calls: ListPrivateIps, + 1 to confirm the public "
                                       "IP is ours")
        if action in ("start (here)", "monitor depth 10"):
            return p.oci_call_ms, "1 call: ListPrivateIps in our VNIC's subnet"
    if j.cloud == "aws":
        call = {"aws-vip": "AssignPrivateIpAddresses", "aws-eip": "AssociateAddress",
                "aws-route": "ReplaceRoute"}[job]
        if action == "start (elsewhere)":
            return p.aws_call_ms, f"1 call: {call}"
        if action == "monitor depth 10":
            return p.aws_call_ms, "1 call: Describe*"
    return 0, "no cloud call needed"
