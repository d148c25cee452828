#!/usr/bin/env python3
"""Differential test of Ferroswitch's Neutron API against the real
neutron-server (OpenStack Neutron 29.0.0): issue 13.

    python3 scripts/neutron_diff.py --vswitchd target/ci/vswitchd \
        [--keep] [--only STEP] [--workdir DIR]

Starts the reference (scripts/neutron_ref/server.py, real Neutron from the
venv that scripts/neutron-ref.sh installs) and `vswitchd` with a loopback
Neutron API, runs one scenario (scripts/neutron_ref/scenario.py) step by
step against both, through raw HTTP and the real `openstack` client, and
compares each step's normalised result. Ids are mapped to the step/name that
created them, timestamps, generated MACs, allocated addresses and VLANs to
tokens; lists the API does not order are compared as multisets.

Every step is `identical`, `wording` (same HTTP status and Neutron error
`type`, other message) or `differ`. A difference fails the run unless its
step id matches a pattern in scripts/neutron_ref/divergences.json
({"step-id-or-fnmatch-pattern": "reason"}). The report goes to stdout and
WORKDIR/report.txt (results of every step: WORKDIR/results.json); the last
line is the summary. --keep leaves WORKDIR (both servers' logs are there).
--only PATTERN runs the scenario up to the last step matching PATTERN
(fnmatch on step ids) and reports only the matching steps.
"""

import argparse
import difflib
import fnmatch
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REF_DIR = os.path.join(HERE, "neutron_ref")
DEFAULT_VENV = "/var/lib/ferroswitch/neutron-ref-venv"

UUID_RE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
PH_RE = re.compile(r"@\{([^}]+)\}")
VHU_RE = re.compile(r"vhu([0-9a-f]{8}-[0-9a-f]{2})(?![0-9a-f])")


def vhu_tok(t, prefix):
    for k, v in t.tok.items():
        if k.startswith(prefix) and UUID_RE.fullmatch(k):
            return "vhu" + v + "[:14]"
    return "vhu<uuid?>[:14]"


# --------------------------------------------------------------------------
# venv

def ensure_venv():
    venv = os.environ.get("NEUTRON_REF_VENV", DEFAULT_VENV)
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    py = subprocess.run(["timeout", "1800", "bash",
                         os.path.join(HERE, "neutron-ref.sh")],
                        stdout=subprocess.PIPE, check=True,
                        text=True).stdout.strip()
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# --------------------------------------------------------------------------
# servers

class Proc:
    def __init__(self, name, argv, log, env=None):
        self.name = name
        self.log = log
        self.f = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=self.f, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env,
                                  start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self.f.close()


def wait_http(url, proc, secs, what):
    deadline = time.time() + secs
    last = None
    while time.time() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{what} exited with {proc.p.returncode}; "
                               f"see {proc.log}")
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                r.read()
                return
        except urllib.error.HTTPError:
            return
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} in {secs}s: {last}; "
                       f"see {proc.log}")


FSW_CONF = """\
[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--file-prefix", "fswdiff-{pid}"]

[dataplane]
pmd_cores = [1]
control_core = 0
vhost_sock_dir = "{work}/vhost"

[control]
socket = "{work}/ctl.sock"
state_dir = "{work}/state"

[neutron]
listen = "127.0.0.1:{port}"
database = "{work}/neutron.db"
host = "compute-1"
network_vlan_ranges = ["physnet1:3000:3099"]
vni_ranges = ["1000:1999"]
bridge_mappings = ["physnet1:uplink"]
vhost_socket_dir = "{vhu}"
# The reference runs no DHCP agent: the network:dhcp port the switch keeps
# for its own DHCP server (docs/NEUTRON.md) is left out of the comparison.
dhcp = false

[[bridges]]
name = "br-int"

[[bridges.ports]]
name = "uplink"
devargs = "net_null0"
"""


def start_ref(work, vhu):
    d = os.path.join(work, "ref")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    p = Proc("neutron-ref", [sys.executable, "-u",
                             os.path.join(REF_DIR, "server.py"),
                             "--port", str(port), "--workdir", d,
                             "--vhostuser-socket-dir", vhu,
                             "--identity-headers"],
             os.path.join(d, "runner.log"))
    wait_http(f"http://127.0.0.1:{port}/", p, 180, "reference neutron")
    return p, f"http://127.0.0.1:{port}"


def start_fsw(vswitchd, work, vhu):
    d = os.path.join(work, "fsw")
    os.makedirs(os.path.join(d, "vhost"), exist_ok=True)
    port = free_port()
    conf = os.path.join(d, "vswitchd.toml")
    with open(conf, "w") as f:
        f.write(FSW_CONF.format(pid=os.getpid(), work=d, port=port, vhu=vhu))
    p = Proc("vswitchd", [os.path.abspath(vswitchd), "--config", conf],
             os.path.join(d, "vswitchd.log"))
    wait_http(f"http://127.0.0.1:{port}/", p, 90, "vswitchd")
    return p, f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------
# one server's view: ids and generated values -> tokens

class Target:
    def __init__(self, name, base, osc):
        self.name = name
        self.base = base
        self.osc = osc
        self.ids = {}        # symbolic name -> id
        self.tok = {}        # id / mac / ip -> token
        self.alloc_vlan = set()  # network ids whose VLAN was allocated
        self.subnets = {}    # subnet id -> subnet dict
        self.results = {}    # step id -> raw result

    def register(self, name, rid, token=None):
        if rid is None:
            return
        self.ids.setdefault(name, rid)
        self.tok.setdefault(rid, f"<{token or name}>")

    # placeholders -----------------------------------------------------
    def resolve(self, key):
        kind, _, arg = key.partition(":")
        if kind in ("mac", "ip", "seg") and arg in self.ids:
            obj = self.results.get("__obj__" + arg)
            if obj is None:
                raise KeyError(key)
            if kind == "mac":
                return obj["mac_address"]
            if kind == "seg":
                return obj["provider:segmentation_id"]
            return obj["fixed_ips"][0]["ip_address"]
        if kind in ("first", "last", "next", "previous"):
            step, _, coll = arg.partition(":")
            r = self.results.get(step)
            if not r or not isinstance(r.get("body"), dict):
                raise KeyError(key)
            b = r["body"]
            if kind in ("next", "previous"):
                for l in b.get(coll + "_links", []):
                    if l.get("rel") == kind:
                        u = urllib.parse.urlsplit(l["href"])
                        return u.path + ("?" + u.query if u.query else "")
                raise KeyError(key)
            items = b.get(coll) or []
            if not items:
                raise KeyError(key)
            return items[0 if kind == "first" else -1]["id"]
        if kind == "minid":
            ids = [self.ids[n] for n in arg.split(",") if n in self.ids]
            if not ids:
                raise KeyError(key)
            return min(ids)
        if key in self.ids:
            return self.ids[key]
        raise KeyError(key)

    def subst(self, v):
        if isinstance(v, str):
            m = PH_RE.fullmatch(v)
            if m:
                return self.resolve(m.group(1))
            return PH_RE.sub(lambda m: str(self.resolve(m.group(1))), v)
        if isinstance(v, list):
            return [self.subst(x) for x in v]
        if isinstance(v, dict):
            return {self.subst(k): self.subst(x) for k, x in v.items()}
        return v

    # learning from responses --------------------------------------------
    def learn(self, body, request_text):
        """Register generated values seen in a response: default security
        groups and their rules, MACs and IPs the request did not ask for."""
        proj = None

        def walk(o):
            if isinstance(o, list):
                for x in o:
                    walk(x)
                return
            if not isinstance(o, dict):
                return
            rules = o.get("security_group_rules", o.get("rules"))
            if ("id" in o and "name" in o and isinstance(rules, list)
                    and o.get("id") not in self.tok):
                name = o["name"]
                if name == "default":
                    name = "default@" + str(o.get("project_id") or
                                            o.get("tenant_id"))
                self.tok[o["id"]] = f"<sg:{name}>"
            if ("direction" in o and "ethertype" in o and "id" in o
                    and o["id"] not in self.tok):
                sg = self.tok.get(o.get("security_group_id"), "<sg:?>")
                rg = o.get("remote_group_id")
                rg = self.tok.get(rg, rg)
                self.tok[o["id"]] = "<rule:%s/%s-%s-%s-%s-%s-%s-%s>" % (
                    sg.strip("<>"), o["direction"], o["ethertype"],
                    o.get("protocol"), o.get("port_range_min"),
                    o.get("port_range_max"), o.get("remote_ip_prefix"), rg)
            if "cidr" in o and "ip_version" in o and "id" in o:
                self.subnets[o["id"]] = o
            if ("mac_address" in o and "fixed_ips" in o and "id" in o):
                pname = self.tok.get(o["id"], "<port:?>").strip("<>")
                mac = o.get("mac_address")
                if (isinstance(mac, str) and mac not in self.tok
                        and mac.lower() not in request_text.lower()):
                    self.tok[mac] = f"<mac:{pname}>"
                for fip in o.get("fixed_ips") or []:
                    if not isinstance(fip, dict):
                        continue
                    ip = fip.get("ip_address")
                    if (not ip or ip in self.tok or ip in request_text):
                        continue
                    self.tok[ip] = self.ip_token(ip, fip.get("subnet_id"),
                                                 mac)
            for x in o.values():
                walk(x)
        walk(body)

    def ip_token(self, ip, subnet_id, mac):
        sn = self.subnets.get(subnet_id)
        sname = self.tok.get(subnet_id, "<subnet:?>").strip("<>")
        if not sn:
            return f"<ip in {sname}>"
        try:
            a = ipaddress.ip_address(ip)
            net = ipaddress.ip_network(sn["cidr"], strict=False)
            if a.version == 6 and mac and MAC_RE.match(mac.lower()):
                b = bytes.fromhex(mac.replace(":", ""))
                eui = bytes([b[0] ^ 2]) + b[1:3] + b"\xff\xfe" + b[3:]
                if int(a) == int(net.network_address) | int.from_bytes(
                        eui, "big"):
                    return f"<eui64 in {sname}>"
            for p in sn.get("allocation_pools") or []:
                if (ipaddress.ip_address(p["start"]) <= a <=
                        ipaddress.ip_address(p["end"])):
                    return f"<allocated from pool of {sname}>"
            if a in net:
                return f"<allocated in {sname} outside its pools: {ip}>"
        except (ValueError, KeyError, TypeError):
            pass
        return ip


# --------------------------------------------------------------------------
# normalisation

UNORDERED_KEEP = {"dns_nameservers"}


def canon(o):
    return json.dumps(o, sort_keys=True)


def normalise(t, body, step):
    unknown = {}
    keep_rev = step.get("rev", False)

    def s(v, key=None):
        if isinstance(v, str):
            if v in t.tok:
                return t.tok[v]
            if key in ("created_at", "updated_at", "started_at",
                       "heartbeat_timestamp") and TS_RE.match(v):
                return "<ts>"
            if key == "href" or v.startswith(t.base):
                return norm_href(t, v)
            if MAC_RE.match(v.lower()) and key in ("mac_address",
                                                   "mac-address"):
                return "<mac?>"

            def uu(m):
                x = m.group(0)
                if x in t.tok:
                    return t.tok[x]
                unknown.setdefault(x, f"<uuid?{len(unknown) + 1}>")
                return unknown[x]
            v = UUID_RE.sub(uu, v)
            # os-vif's vhost-user socket name: "vhu" + the port id, cut to
            # 14 characters
            v = VHU_RE.sub(lambda m: vhu_tok(t, m.group(1)), v)
            return v.replace(t.base, "<base>")
        if isinstance(v, list):
            out = [s(x, key) for x in v]
            if key not in UNORDERED_KEEP and not (
                    key == "__top__" and step.get("ordered")):
                out.sort(key=canon)
            return out
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k == "revision_number" and not keep_rev:
                    out[k] = "<rev>"
                elif k == "standard_attr_id" and isinstance(x, int):
                    out[k] = "<int>"
                elif (k == "provider:segmentation_id" and isinstance(x, int)
                      and v.get("id") in t.alloc_vlan and 3000 <= x <= 3099):
                    out[k] = "<vlan allocated from physnet1:3000:3099>"
                # ML2 takes a VNI at random from the free ones, here the
                # lowest: which one is not the API's to promise.
                elif (k == "provider:segmentation_id" and isinstance(x, int)
                      and v.get("id") in t.alloc_vlan
                      and v.get("provider:network_type") == "vxlan"
                      and 1000 <= x <= 1999):
                    out[k] = "<vni allocated from 1000:1999>"
                elif k in ("created_at", "updated_at") and x:
                    out[k] = "<ts>"
                elif k.endswith("_links") and isinstance(x, list):
                    out[k] = sorted((s(l, "link") for l in x), key=canon)
                else:
                    out[k] = s(x, k)
            # a collection at the top: its order is the API's
            return out
        return v

    if isinstance(body, dict) and step.get("ordered"):
        out = {}
        for k, x in body.items():
            if isinstance(x, list) and not k.endswith("_links"):
                out[k] = [s(i, k + "[]") for i in x]
            else:
                out[k] = s({k: x})[k]
        return out
    if isinstance(body, list) and step.get("ordered"):
        return [s(i, "item") for i in body]
    return s(body)


def norm_href(t, href):
    u = urllib.parse.urlsplit(href)
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    q = sorted((k, t.tok.get(v, v)) for k, v in q)
    path = UUID_RE.sub(lambda m: t.tok.get(m.group(0), "<uuid?>"), u.path)
    base = f"{u.scheme}://{u.netloc}"
    return ("<base>" if base == t.base else base) + path + (
        "?" + "&".join(f"{k}={v}" for k, v in q) if q else "")


# --------------------------------------------------------------------------
# running a step

def run_http(t, st, project):
    method = st["method"]
    path = t.subst(st["path"])
    hdrs = {"Accept": "application/json"}
    if st.get("project", True) is not False:
        hdrs["X-User-Id"] = "neutron-diff"
        hdrs["X-Project-Id"] = st.get("project") or project
        hdrs["X-Roles"] = st.get("roles", "admin,member,reader")
    hdrs.update(st.get("headers", {}))
    data = None
    if "raw" in st:
        data = st["raw"].encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif "body" in st:
        data = json.dumps(t.subst(st["body"])).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(t.base + path, data=data, method=method,
                                 headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get(
                "Content-Type")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type")
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return {"request": f"{method} {path}" + (
        f" {data.decode()}" if data else ""), "status": status,
        "content_type": (ctype or "").split(";")[0] if status != 204
        else None, "body": body}


def run_cli(t, st):
    args = [str(a) for a in t.subst(st["cli"])]
    argv = [t.osc, "--os-auth-type", "none", "--os-endpoint",
            t.base + "/"] + args
    if st.get("json", True):
        argv += ["-f", "json"]
    try:
        p = subprocess.run(["timeout", "60"] + argv, capture_output=True,
                           text=True, timeout=90,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = 124, "", "timeout"
    body = out
    try:
        body = json.loads(out) if out.strip() else None
    except ValueError:
        pass
    err = "\n".join(l for l in err.splitlines()
                    if l.strip() and "Eventlet" not in l
                    and "eventlet" not in l and "Warning" not in l
                    and "migration" not in l and "framework" not in l
                    and "strongly recommend" not in l)
    return {"request": "openstack " + shlex.join(args), "exit": rc,
            "body": body, "stderr": err.replace(t.base, "<base>").strip()}


def after(t, st, res):
    """Register what the step created on this server."""
    req_text = res.get("request", "")
    body = res.get("body")
    ok = res.get("status", 0) < 300 if "status" in res else res.get(
        "exit") == 0
    reg = st.get("reg")
    if ok and reg:
        objs = []
        if isinstance(body, dict):
            if "id" in body:
                objs = [body]
            else:
                for v in body.values():
                    if isinstance(v, dict) and "id" in v:
                        objs = [v]
                    elif isinstance(v, list):
                        objs = [x for x in v if isinstance(x, dict)]
        names = reg if isinstance(reg, list) else [reg]
        for n, o in zip(names, objs):
            t.register(n, o.get("id"), st.get("token"))
            t.results["__obj__" + n] = o
            if ("provider:network_type" in o or "segments" in o) and \
                    "provider:segmentation_id" not in req_text and \
                    "--provider-segment" not in req_text:
                t.alloc_vlan.add(o.get("id"))
    if ok and body is not None:
        t.learn(body, req_text)
        learn_groups(t, body)
    # refresh stored objects (for @{mac:..} / @{ip:..})
    if ok and isinstance(body, dict):
        for v in [body] + list(body.values()):
            if isinstance(v, dict) and v.get("id") in t.tok:
                n = t.tok[v["id"]].strip("<>")
                if "__obj__" + n in t.results:
                    t.results["__obj__" + n] = v


def learn_groups(t, body):
    """Ports name security groups by id only: fetch groups not seen yet
    (e.g. a default group created behind the scenario's back) so that they
    get a name, not an anonymous token."""
    seen = set()

    def walk(o):
        if isinstance(o, dict):
            for k, x in o.items():
                if k in ("security_groups", "security_group_ids") and \
                        isinstance(x, list):
                    seen.update(i for i in x if isinstance(i, str)
                                and UUID_RE.fullmatch(i) and i not in t.tok)
                else:
                    walk(x)
        elif isinstance(o, list):
            for x in o:
                walk(x)
    walk(body)
    for sid in sorted(seen):
        req = urllib.request.Request(
            f"{t.base}/v2.0/security-groups/{sid}",
            headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                t.learn(json.loads(r.read()), "")
        except Exception:
            pass


def run_step(t, st, project):
    try:
        if "cli" in st:
            res = run_cli(t, st)
        else:
            res = run_http(t, st, project)
    except KeyError as e:
        res = {"request": "(not sent)", "skipped":
               f"unresolved placeholder {e.args[0]} (an earlier step "
               f"failed on {t.name})"}
    t.results[st["id"]] = res
    if "skipped" not in res:
        after(t, st, res)
    return res


def view(t, st, res):
    """The normalised, comparable form of a result."""
    if "skipped" in res:
        return {"skipped": True}
    if "exit" in res:
        v = {"exit": res["exit"]}
        if res["exit"] == 0:
            v["output"] = normalise(t, res["body"], st)
        else:
            v["error"] = normalise(t, res["stderr"], st)
        return v
    v = {"status": res["status"], "content_type": res["content_type"]}
    b = res["body"]
    if isinstance(b, dict) and "NeutronError" in b and isinstance(
            b["NeutronError"], dict):
        e = b["NeutronError"]
        v["error_type"] = e.get("type")
        v["error"] = normalise(t, {k: x for k, x in e.items()
                                   if k != "type"}, st)
        extra = {k: x for k, x in b.items() if k != "NeutronError"}
        if extra:
            v["body_extra"] = normalise(t, extra, st)
    elif res["status"] >= 400:
        v["error_type"] = None
        v["error"] = normalise(t, b, st)
    else:
        v["body"] = normalise(t, b, st)
    for k in st.get("ignore", []):
        drop(v.get("body"), k)
        drop(v.get("output"), k)
    return v


def drop(o, key):
    if isinstance(o, dict):
        o.pop(key, None)
        for x in o.values():
            drop(x, key)
    elif isinstance(o, list):
        for x in o:
            drop(x, key)


def classify(a, b):
    if a == b:
        return "identical"
    if "status" in a and "status" in b:
        if (a["status"] == b["status"] and a["status"] >= 400
                and a.get("error_type") == b.get("error_type")
                and a.get("content_type") == b.get("content_type")):
            return "wording"
    if "exit" in a and "exit" in b:
        if a["exit"] == b["exit"] != 0:
            return "wording"
    return "differ"


def pretty(o):
    return json.dumps(o, indent=1, sort_keys=True, ensure_ascii=False)


def compact_diff(a, b):
    la = pretty(a).splitlines()
    lb = pretty(b).splitlines()
    d = list(difflib.unified_diff(la, lb, "neutron", "ferroswitch",
                                  n=1, lineterm=""))
    return "\n".join(d[2:]) if d else ""


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vswitchd", required=True)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", help="fnmatch pattern of step ids")
    ap.add_argument("--workdir")
    ap.add_argument("--divergences",
                    default=os.path.join(REF_DIR, "divergences.json"))
    ap.add_argument("--full", action="store_true",
                    help="print both normalised results in full, not "
                    "only the diff")
    a = ap.parse_args()
    ensure_venv()
    sys.path.insert(0, REF_DIR)
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import scenario

    if not os.path.exists(a.vswitchd):
        sys.exit(f"neutron_diff: no vswitchd at {a.vswitchd}")
    work = a.workdir or tempfile.mkdtemp(prefix="neutron-diff-")
    os.makedirs(work, exist_ok=True)
    vhu = os.path.join(work, "vhu")
    os.makedirs(vhu, exist_ok=True)
    with open(a.divergences) as f:
        documented = json.load(f)
    osc = os.path.join(os.path.dirname(sys.executable), "openstack")

    steps = scenario.steps()
    ids = [s["id"] for s in steps]
    assert len(ids) == len(set(ids)), "duplicate step ids"
    selected = set(ids)
    if a.only:
        selected = {i for i in ids if fnmatch.fnmatchcase(i, a.only)}
        if not selected:
            sys.exit(f"neutron_diff: no step matches {a.only}")
        last = max(ids.index(i) for i in selected)
        steps = steps[:last + 1]

    procs = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.time()
    out_lines = []
    try:
        ref, ref_url = start_ref(work, vhu)
        procs.append(ref)
        fsw, fsw_url = start_fsw(a.vswitchd, work, vhu)
        procs.append(fsw)
        print(f"neutron_diff: reference {ref_url}, ferroswitch {fsw_url}, "
              f"work dir {work} (started in {time.time() - t0:.1f}s)",
              flush=True)
        R = Target("neutron", ref_url, osc)
        F = Target("ferroswitch", fsw_url, osc)
        counts = {"identical": 0, "wording": 0, "differ": 0}
        documented_n = 0
        undocumented = []
        results = []
        for st in steps:
            ra = run_step(R, st, scenario.PROJECT)
            rb = run_step(F, st, scenario.PROJECT)
            if st["id"] not in selected:
                continue
            va, vb = view(R, st, ra), view(F, st, rb)
            c = classify(va, vb)
            counts[c] += 1
            doc = next((r for p, r in documented.items()
                        if fnmatch.fnmatchcase(st["id"], p)), None)
            results.append({"id": st["id"], "what": st.get("what", ""),
                            "class": c, "documented": doc,
                            "neutron": ra, "ferroswitch": rb,
                            "neutron_normalised": va,
                            "ferroswitch_normalised": vb})
            if c == "identical":
                continue
            if c == "differ":
                if doc:
                    documented_n += 1
                else:
                    undocumented.append(st["id"])
            tag = {"wording": "SAME OUTCOME, OTHER WORDING",
                   "differ": "DIFFER"}[c]
            if doc:
                tag += f" (documented: {doc})"
            lines = [f"=== {st['id']}: {tag}",
                     f"    {st.get('what', '')}".rstrip(),
                     f"    neutron:     {ra['request']}",
                     f"    ferroswitch: {rb['request']}"]
            if a.full or c == "differ" and (
                    "skipped" in va or "skipped" in vb):
                lines += ["--- neutron (normalised):", pretty(va),
                          "--- ferroswitch (normalised):", pretty(vb)]
            lines += ["--- diff (- neutron, + ferroswitch):",
                      compact_diff(va, vb), ""]
            print("\n".join(lines), flush=True)
            out_lines += lines
        n = sum(counts.values())
        summary = (f"neutron_diff: {n} steps, {counts['identical']} "
                   f"identical, {counts['wording']} same outcome other "
                   f"wording, {counts['differ']} differ ({documented_n} "
                   f"documented)")
        if undocumented:
            out_lines.append("undocumented differences: " +
                             " ".join(undocumented))
            print(out_lines[-1])
        out_lines.append(f"run time {time.time() - t0:.1f}s")
        print(out_lines[-1])
        out_lines.append(summary)
        with open(os.path.join(work, "report.txt"), "w") as f:
            f.write("\n".join(out_lines) + "\n")
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(summary, flush=True)
        rc = 1 if undocumented else 0
    except KeyboardInterrupt:
        print("neutron_diff: interrupted", file=sys.stderr)
        rc = 130
    except Exception as e:
        print(f"neutron_diff: {e}", file=sys.stderr)
        rc = 2
    finally:
        for p in reversed(procs):
            p.stop()
        if a.keep or rc == 2:
            print(f"neutron_diff: work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
