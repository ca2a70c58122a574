"""Per cloud: the emulator's world for a latency profile, the state a measurement starts
from ("elsewhere": node 2 holds the VIPs, node 1 does not), and what node 1 holds in the
cloud afterwards (the emulator's truth, not the tool's word)."""
import os

from lab import addrs, drop_addrs, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ENI = ["eni-0c10d0000000000e1", "eni-0c10d0000000000e2"]
OCI_VNIC = ["ocid1.vnic.oc1.iad.aaaaaaaanode1", "ocid1.vnic.oc1.iad.aaaaaaaanode2"]
EIP_ALLOC = "eipalloc-0c10d00000000000f2"
RTB = "rtb-0c10d0000000000c1"


def world_file(name, **values):
    with open(os.path.join(HERE, "worlds", f"{name}.toml")) as f:
        return f.read().format(**values)


class Lan:
    name = "none"

    def world(self, p, ctx):
        return None

    def faults(self, p):
        return []

    def elsewhere(self, ctx, job, vips):
        for ns in ctx.lab_nodes:
            drop_addrs(ns, vips)

    def held(self, ctx, job, vips):
        return sum(v in addrs(ctx.lab_nodes[0]) for v in vips)

    def quiesce(self, ctx):
        pass


class Gce:
    name = "gce"

    def world(self, p, ctx):
        return world_file("gce", pending_ms=p.gce_pending_ms, running_ms=p.gce_running_ms,
                          discovery=ctx.discovery_doc)

    def faults(self, p):
        return [{"kind": "latency", "cloud": "gce", "service": "compute",
                 "ms": p.gce_call_ms}] if p.gce_call_ms else []

    def _nics(self, ctx):
        st = ctx.sim.admin("GET", "/admin/state")["gce"]["instances"]
        insts = st.values() if isinstance(st, dict) else st
        return {i["name"]: i["networkInterfaces"][0] for i in insts}

    def elsewhere(self, ctx, job, vips):
        ranges = [{"ipCidrRange": f"{v}/32"} for v in vips]
        a = {"aliasIpRanges": [{"ipCidrRange": "10.128.0.50/32"}]}
        b = {"aliasIpRanges": [{"ipCidrRange": "10.128.0.60/32"}] + ranges}
        if job.public:
            a["accessConfigs"] = []
            b["accessConfigs"] = [{"name": "External NAT", "natIP": job.public}]
        ctx.sim.admin("POST", "/admin/gce/instances/node-a/nics/nic0", a)
        ctx.sim.admin("POST", "/admin/gce/instances/node-b/nics/nic0", b)
        drop_addrs(ctx.lab_nodes[0], vips)

    def quiesce(self, ctx):
        """No operation still queued: one a killed or timed-out agent left behind would
        delay every later one on that instance."""
        def done():
            ops = ctx.sim.admin("GET", "/admin/state")["gce"]["operations"]
            return all(o.get("status") == "DONE" for o in ops)
        if not wait_until(done, 180, 0.1):
            raise RuntimeError("GCE operations still running after 180 s")

    def held(self, ctx, job, vips):
        nic = self._nics(ctx)["node-a"]
        have = {r["ipCidrRange"] for r in nic.get("aliasIpRanges", [])}
        n = sum(f"{v}/32" in have for v in vips)
        if job.public and job.public not in [c.get("natIP") for c in
                                             nic.get("accessConfigs", [])]:
            return 0
        return n


class Oci:
    name = "oci"

    def world(self, p, ctx):
        return world_file("oci", public_ip_assign_ms=p.oci_public_assign_ms)

    def faults(self, p):
        return [{"kind": "latency", "cloud": "oci", "service": s, "ms": p.oci_call_ms}
                for s in ("networking", "auth")] if p.oci_call_ms else []

    def elsewhere(self, ctx, job, vips):
        # OCI's console has no "move" the admin API offers: node 2's cloudvip takes the
        # VIPs (creating the private IPs where missing), then stops, which leaves them on
        # its VNIC, as after a failover away from node 1.
        ctx.cloudvip_on_node2(job, vips, "start")
        ctx.cloudvip_on_node2(job, vips, "stop")
        drop_addrs(ctx.lab_nodes[0], vips)

    def quiesce(self, ctx):
        pass

    def held(self, ctx, job, vips):
        st = ctx.sim.admin("GET", "/admin/state")["oci"]
        mine = {p["ipAddress"]: p["id"] for p in st["privateIps"]
                if p["vnicId"] == OCI_VNIC[0]}
        n = sum(v in mine for v in vips)
        if job.public:
            pub = [p for p in st.get("publicIps", []) if p.get("ipAddress") == job.public]
            if not pub or pub[0].get("assignedEntityId") not in mine.values() \
                    or pub[0].get("lifecycleState") != "ASSIGNED":
                return 0
        return n


class Aws:
    name = "aws"

    def world(self, p, ctx):
        return world_file("aws", lag_ms=p.aws_lag_ms, metadata_lag_ms=p.aws_metadata_lag_ms)

    def faults(self, p):
        return [{"kind": "latency", "cloud": "aws", "service": s, "ms": p.aws_call_ms}
                for s in ("ec2", "sts")] if p.aws_call_ms else []

    def elsewhere(self, ctx, job, vips):
        sim = ctx.sim
        if job.key == "aws-vip":
            sim.admin("POST", f"/admin/aws/enis/{ENI[1]}/assign",
                      {"ips": vips, "allow_reassignment": True})
        elif job.key == "aws-eip":
            sim.admin("POST", f"/admin/aws/elastic-ips/{EIP_ALLOC}/associate", {"eni": ENI[1]})
        else:
            sim.admin("PUT", f"/admin/aws/route-tables/{RTB}/routes",
                      {"destination": f"{vips[0]}/32", "eni": ENI[1]})
        drop_addrs(ctx.lab_nodes[0], vips)

    def quiesce(self, ctx):
        # Each measurement starts from a settled cloud; its own writes then lag.
        ctx.sim.admin("POST", "/admin/aws/settle")

    def held(self, ctx, job, vips):
        st = ctx.sim.admin("GET", "/admin/aws/state")
        if job.key == "aws-vip":
            eni = next(e for e in st["enis"] if e["id"] == ENI[0])
            return sum(v in eni["secondary_ips"] for v in vips)
        if job.key == "aws-eip":
            eip = next(a for a in st["elastic_ips"] if a["public_ip"] == job.public)
            return int((eip.get("association") or {}).get("eni") == ENI[0])
        t = next(t for t in st["route_tables"] if t["id"] == RTB)
        r = next(r for r in t["routes"] if r["destination"] == f"{vips[0]}/32")
        return int(r["target"].get("eni") == ENI[0])


CLOUDS = {c.name: c for c in (Lan(), Gce(), Oci(), Aws())}
