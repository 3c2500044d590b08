#!/usr/bin/env python3
"""Validates the objects `helm template` rendered from deploy/helm/chat (scripts/helm-check.sh).

Three layers, every one fatal:
1. schema: each object against the Kubernetes API's JSON schemas of every version asked for
   (kubernetes-validate's bundled schemas, generated from the official OpenAPI documents), in
   strict mode: unknown fields are errors, and so is a kind/apiVersion that version does not
   serve (kubernetes-validate itself only warns about those).
2. references: what the API server cannot check one object at a time: Service selectors and
   target ports, probe ports, HPA targets, PDB selectors, Ingress backends, volume mounts,
   secretKeyRefs into the chart's own Secret, $(VAR) references in env, duplicate env names,
   `*_FILE` settings naming a file a mounted secret volume provides, CHAT__OPS__LISTEN on the
   container's `ops` port.
3. chart rules (issue #17 item 5): gateways drain (preStop, a grace period longer than preStop +
   drain), probe the real health endpoints, advertise their pod IP, have a PDB and an HPA;
   message servers have a PDB and no more replicas than partitions; chat-media reaches
   PostgreSQL and the object store and no other store, has a memory limit covering its workers'
   decodes, a grace period longer than its drain and (with more than one replica) a PDB; the
   migration Job is a pre-install/pre-upgrade hook; pods run as non-root.

--self-test breaks copies of good objects in known ways and fails unless each is rejected.

Usage: validate.py --versions 1.29.0,1.37.0 [--external-service NAME]... [--self-test]
                   LABEL=FILE...
"""

import argparse
import copy
import functools
import re
import sys

import yaml
import kubernetes_validate.utils as kv
from kubernetes_validate.version import __version__ as KV_VERSION

# kubernetes-validate reads the 1.8 MB definitions file again for every object: read it once.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def name_of(o):
    return "%s/%s" % (o.get("kind"), (o.get("metadata") or {}).get("name"))


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --- 1. schema -------------------------------------------------------------------------------

def schema_errors(obj, versions):
    errs = []
    for v in versions:
        try:
            kv.validate(obj, v, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            errs.append("schema %s: %s: %s: %s" % (v, name_of(obj), path, e.message[:300]))
        except kv.SchemaNotFoundError as e:
            errs.append("schema %s: %s: %s" % (v, name_of(obj), e.message))
        except (kv.InvalidSchemaError, kv.VersionNotSupportedError) as e:
            errs.append("schema %s: %s: %s" % (v, name_of(obj), getattr(e, "message", e)))
    return errs


# --- 2. references ---------------------------------------------------------------------------

def pod_spec(o):
    if o.get("kind") in WORKLOADS:
        return ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def pod_labels(o):
    return (((o.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def containers(spec):
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def port_names(spec):
    return {p.get("name") for c in containers(spec) for p in c.get("ports") or [] if p.get("name")}


def port_numbers(spec):
    return {p.get("containerPort") for c in containers(spec) for p in c.get("ports") or []}


def secret_files(spec, c):
    """Paths of the files the container sees from mounted secret volumes (projected or not)."""
    vols = {v.get("name"): v for v in spec.get("volumes") or []}
    files = set()
    for m in c.get("volumeMounts") or []:
        v = vols.get(m.get("name")) or {}
        srcs = [{"secret": v["secret"]}] if "secret" in v else (v.get("projected") or {}).get("sources") or []
        for s in srcs:
            for it in (s.get("secret") or {}).get("items") or []:
                files.add("%s/%s" % (m.get("mountPath", "").rstrip("/"), it.get("path")))
    return files


def probe_ports(c):
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        p = c.get(kind) or {}
        for h in ("httpGet", "tcpSocket", "grpc"):
            if h in p:
                yield kind, p[h].get("port")


def reference_errors(objs, external_services):
    errs = []
    workloads = [o for o in objs if o.get("kind") in WORKLOADS]
    services = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "Service"}
    secrets = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "Secret"}
    deployments = {o["metadata"]["name"] for o in objs if o.get("kind") == "Deployment"}

    for o in workloads:
        spec = pod_spec(o)
        sel = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels")
        if o["kind"] != "Job" and not matches(sel, pod_labels(o)):
            errs.append("refs: %s: selector %s does not match its pod labels" % (name_of(o), sel))
        volumes = {v.get("name") for v in spec.get("volumes") or []}
        for c in containers(spec):
            names = {p.get("name") for p in c.get("ports") or []}
            numbers = {p.get("containerPort") for p in c.get("ports") or []}
            for kind, port in probe_ports(c):
                if isinstance(port, str) and port not in names:
                    errs.append("refs: %s: %s port %r is not a port of container %s"
                                % (name_of(o), kind, port, c.get("name")))
                if isinstance(port, int) and port not in numbers:
                    errs.append("refs: %s: %s port %d is not declared by container %s"
                                % (name_of(o), kind, port, c.get("name")))
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in volumes:
                    errs.append("refs: %s: volumeMount %r names no volume"
                                % (name_of(o), m.get("name")))
            files = secret_files(spec, c)
            for e in c.get("env") or []:
                n, v = e.get("name", ""), e.get("value")
                if n.startswith("CHAT__") and n.endswith("_FILE") and isinstance(v, str) and v not in files:
                    errs.append("refs: %s: env %s=%s is not a file of a mounted secret volume of container %s"
                                % (name_of(o), n, v, c.get("name")))
                if n == "CHAT__OPS__LISTEN" and isinstance(v, str):
                    ops = [p.get("containerPort") for p in c.get("ports") or [] if p.get("name") == "ops"]
                    port = v.rpartition(":")[2]
                    if not port.isdigit() or ops != [int(port)]:
                        errs.append("refs: %s: CHAT__OPS__LISTEN=%s is not the container's ops port %s"
                                    % (name_of(o), v, ops))
            seen = set()
            for e in c.get("env") or []:
                n = e.get("name")
                if n in seen:
                    errs.append("refs: %s: env %s is set twice in container %s"
                                % (name_of(o), n, c.get("name")))
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(e.get("value", ""))):
                    if ref not in seen:
                        errs.append("refs: %s: env %s uses $(%s), which is not defined before it"
                                    % (name_of(o), n, ref))
                seen.add(n)
                v = e.get("value")
                if isinstance(v, str) and re.fullmatch(r"-?[0-9.]+e[+-]?[0-9]+", v):
                    errs.append("refs: %s: env %s=%s is a number in exponent notation"
                                % (name_of(o), n, v))
                skr = ((e.get("valueFrom") or {}).get("secretKeyRef")) or {}
                if skr.get("name") in secrets and skr.get("key") not in (secrets[skr["name"]].get("data") or {}):
                    errs.append("refs: %s: env %s reads key %r that secret %s does not have"
                                % (name_of(o), n, skr.get("key"), skr["name"]))
        for v in spec.get("volumes") or []:
            srcs = [{"secret": v["secret"]}] if "secret" in v else (v.get("projected") or {}).get("sources") or []
            for s in srcs:
                sec = s.get("secret") or {}
                nm = sec.get("secretName") or sec.get("name")
                if nm in secrets:
                    for it in sec.get("items") or []:
                        if it.get("key") not in (secrets[nm].get("data") or {}):
                            errs.append("refs: %s: volume %s reads key %r that secret %s does not have"
                                        % (name_of(o), v.get("name"), it.get("key"), nm))

    for name, s in services.items():
        sel = (s.get("spec") or {}).get("selector") or {}
        pods = [w for w in workloads if matches(sel, pod_labels(w))]
        if not pods:
            errs.append("refs: Service/%s: selector %s matches no workload" % (name, sel))
        for p in (s.get("spec") or {}).get("ports") or []:
            t = p.get("targetPort", p.get("port"))
            for w in pods:
                ok = t in port_names(pod_spec(w)) if isinstance(t, str) else t in port_numbers(pod_spec(w))
                if not ok:
                    errs.append("refs: Service/%s: targetPort %r is not a port of %s" % (name, t, name_of(w)))

    for o in objs:
        k = o.get("kind")
        if k == "HorizontalPodAutoscaler":
            ref = o["spec"].get("scaleTargetRef") or {}
            if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
                errs.append("refs: %s: scaleTargetRef %s/%s is not a rendered Deployment"
                            % (name_of(o), ref.get("kind"), ref.get("name")))
            if o["spec"].get("minReplicas", 1) > o["spec"].get("maxReplicas", 0):
                errs.append("refs: %s: minReplicas > maxReplicas" % name_of(o))
        elif k == "PodDisruptionBudget":
            sel = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels")
            if not any(matches(sel, pod_labels(w)) for w in workloads):
                errs.append("refs: %s: selector %s matches no workload" % (name_of(o), sel))
        elif k == "NetworkPolicy":
            sel = ((o.get("spec") or {}).get("podSelector") or {}).get("matchLabels")
            targets = [w for w in workloads if matches(sel, pod_labels(w))]
            if not targets:
                errs.append("refs: %s: podSelector %s matches no workload" % (name_of(o), sel))
            for rule in (o.get("spec") or {}).get("ingress") or []:
                for p in rule.get("ports") or []:
                    port = p.get("port")
                    if isinstance(port, str) and not all(port in port_names(pod_spec(w)) for w in targets):
                        errs.append("refs: %s: port %r is not a port of every selected pod" % (name_of(o), port))
        elif k == "Ingress":
            for rule in (o.get("spec") or {}).get("rules") or []:
                for p in ((rule.get("http") or {}).get("paths")) or []:
                    svc = ((p.get("backend") or {}).get("service")) or {}
                    nm, port = svc.get("name"), (svc.get("port") or {})
                    if nm in external_services:
                        continue
                    if nm not in services:
                        errs.append("refs: %s: backend service %s is not rendered" % (name_of(o), nm))
                        continue
                    sp = services[nm]["spec"].get("ports") or []
                    if "number" in port and port["number"] not in [x.get("port") for x in sp]:
                        errs.append("refs: %s: service %s has no port %s" % (name_of(o), nm, port["number"]))
                    if "name" in port and port["name"] not in [x.get("name") for x in sp]:
                        errs.append("refs: %s: service %s has no port named %s" % (name_of(o), nm, port["name"]))
    return errs


# --- 3. chart rules --------------------------------------------------------------------------

def component(o):
    return ((o.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component")


def env_of(c):
    return {e["name"]: e for e in c.get("env") or []}


QUANTITY = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(q):
    """A Kubernetes memory quantity in bytes (None if not one of the usual forms)."""
    m = re.fullmatch(r"([0-9.]+)(e[0-9]+|Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    if not m:
        return None
    suffix = m.group(2) or ""
    if suffix.startswith("e"):
        return float(m.group(1)) * 10 ** int(suffix[1:])
    return float(m.group(1)) * QUANTITY[suffix]


# chat-media: per worker, the decode bound (services/chat-media/src/thumbnail.rs MAX_ALLOC) and the
# largest file (chat-types ATTACHMENT_MAX_BYTES).
MEDIA_BYTES_PER_WORKER = (256 + 25) * 2**20


def rule_errors(objs):
    errs = []
    by = {}
    for o in objs:
        by.setdefault((o.get("kind"), component(o)), []).append(o)

    for o in objs:
        spec = pod_spec(o)
        if spec is None:
            continue
        psc = spec.get("securityContext") or {}
        for c in containers(spec):
            sc = c.get("securityContext") or {}
            if not (psc.get("runAsNonRoot") or sc.get("runAsNonRoot")):
                errs.append("rules: %s: container %s may run as root" % (name_of(o), c.get("name")))
            if sc.get("allowPrivilegeEscalation") is not False:
                errs.append("rules: %s: container %s allows privilege escalation" % (name_of(o), c.get("name")))
            if not sc.get("readOnlyRootFilesystem"):
                errs.append("rules: %s: container %s has a writable root filesystem" % (name_of(o), c.get("name")))
            if o["kind"] == "Deployment":
                for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                    got = ((c.get(kind) or {}).get("httpGet") or {}).get("path")
                    if got != path:
                        errs.append("rules: %s: %s must GET %s on the ops port, not %r" % (name_of(o), kind, path, got))

    gws = by.get(("Deployment", "gateway"), [])
    if len(gws) != 1:
        errs.append("rules: expected one gateway Deployment, got %d" % len(gws))
    for gw in gws:
        spec = pod_spec(gw)
        c = spec["containers"][0]
        env = env_of(c)
        sleep = ((((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")) or []
        if len(sleep) != 2 or sleep[0] != "sleep" or not str(sleep[1]).isdigit():
            errs.append("rules: %s: the gateway needs a preStop sleep (got %r)" % (name_of(gw), sleep))
            sleep = ["sleep", "0"]
        drain = int((env.get("CHAT__GATEWAY__DRAIN_SECS") or {}).get("value", "5"))
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= int(sleep[1]) + drain:
            errs.append("rules: %s: terminationGracePeriodSeconds %d does not cover preStop %s s + drain %d s"
                        % (name_of(gw), grace, sleep[1], drain))
        url = (env.get("CHAT__GATEWAY__INTERNAL_URL") or {}).get("value", "")
        ip = (((env.get("POD_IP") or {}).get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if "$(POD_IP)" not in url or ip != "status.podIP":
            errs.append("rules: %s: CHAT__GATEWAY__INTERNAL_URL must name the pod IP (downward API), got %r"
                        % (name_of(gw), url))
        gid = (env.get("CHAT__GATEWAY__ID") or {}).get("value", "")
        if "$(POD_NAME)" not in gid:
            errs.append("rules: %s: CHAT__GATEWAY__ID must be unique per pod, got %r" % (name_of(gw), gid))
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        if not by.get((kind, "gateway")):
            errs.append("rules: the gateways have no %s" % kind)
    if not by.get(("PodDisruptionBudget", "message-server")):
        errs.append("rules: the message servers have no PodDisruptionBudget")
    for ms in by.get(("Deployment", "message-server"), []):
        env = env_of(pod_spec(ms)["containers"][0])
        parts = int((env.get("CHAT__KAFKA__PARTITIONS") or {}).get("value", "16"))
        if ms["spec"].get("replicas", 1) > parts:
            errs.append("rules: %s: %d replicas > %d partitions" % (name_of(ms), ms["spec"]["replicas"], parts))
    for md in by.get(("Deployment", "media"), []):
        spec = pod_spec(md)
        c = spec["containers"][0]
        env = env_of(c)
        for needed in ("CHAT__POSTGRES__URL", "CHAT__OBJECTS__ENDPOINT", "CHAT__OBJECTS__BUCKET",
                       "CHAT__OBJECTS__ACCESS_KEY_FILE", "CHAT__OBJECTS__SECRET_KEY_FILE"):
            if needed not in env:
                errs.append("rules: %s: chat-media needs %s" % (name_of(md), needed))
        others = sorted(n for n in env if re.match(r"CHAT__(KAFKA|REDIS|CASSANDRA|AUTH|INTERNAL|APNS)__", n))
        if others:
            errs.append("rules: %s: chat-media uses no Kafka, Redis, Cassandra or tokens, but gets %s"
                        % (name_of(md), ", ".join(others)))
        mid = (env.get("CHAT__MEDIA__ID") or {}).get("value", "")
        if "$(POD_NAME)" not in mid:
            errs.append("rules: %s: CHAT__MEDIA__ID must be unique per pod, got %r" % (name_of(md), mid))
        drain = int((env.get("CHAT__MEDIA__DRAIN_SECS") or {}).get("value", "10"))
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= drain:
            errs.append("rules: %s: terminationGracePeriodSeconds %d does not cover the drain %d s"
                        % (name_of(md), grace, drain))
        workers = int((env.get("CHAT__MEDIA__WORKERS") or {}).get("value", "1"))
        limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        got = quantity_bytes(limit) if limit is not None else None
        if got is None or got < workers * MEDIA_BYTES_PER_WORKER:
            errs.append("rules: %s: memory limit %r does not cover %d worker(s) x 281 MiB (decode bound + file)"
                        % (name_of(md), limit, workers))
        if md["spec"].get("replicas", 1) > 1 and not by.get(("PodDisruptionBudget", "media")):
            errs.append("rules: %s: %d replicas and no PodDisruptionBudget" % (name_of(md), md["spec"]["replicas"]))
    for job in by.get(("Job", "migrate"), []):
        hook = ((job.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")
        if set(hook.split(",")) != {"pre-install", "pre-upgrade"}:
            errs.append("rules: %s: helm.sh/hook must be pre-install,pre-upgrade, got %r" % (name_of(job), hook))
    return errs


def check(objs, versions, external_services):
    errs = []
    for o in objs:
        errs += schema_errors(o, versions)
    if errs:
        # Layers 2 and 3 read well-formed objects only.
        return errs
    try:
        return reference_errors(objs, external_services) + rule_errors(objs)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        return ["refs: an object is not shaped as the checks expect: %r" % e]


# --- self-test -------------------------------------------------------------------------------

def find(objs, kind, comp):
    for i, o in enumerate(objs):
        if o.get("kind") == kind and component(o) == comp:
            return i
    raise SystemExit("self-test: no %s of component %s in the rendered objects" % (kind, comp))


def breakages(objs):
    """(what, mutate) pairs; each mutate changes a deep copy of objs in place."""
    def unknown_field(os):
        os[find(os, "Deployment", "gateway")]["spec"]["replicaz"] = 3

    def unknown_container_field(os):
        os[find(os, "Deployment", "api")]["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}

    def wrong_type(os):
        os[find(os, "Deployment", "message-server")]["spec"]["replicas"] = "two"

    def removed_api(os):
        os[find(os, "HorizontalPodAutoscaler", "gateway")]["apiVersion"] = "autoscaling/v2beta2"

    def missing_required(os):
        del os[find(os, "Deployment", "api")]["spec"]["selector"]

    def probe_port(os):
        c = os[find(os, "Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
        c["readinessProbe"]["httpGet"]["port"] = "metrics"

    def service_port(os):
        os[find(os, "Service", "api")]["spec"]["ports"][0]["targetPort"] = "web"

    def no_prestop(os):
        c = os[find(os, "Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
        del c["lifecycle"]

    def short_grace(os):
        os[find(os, "Deployment", "gateway")]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 5

    def media_container(os):
        return os[find(os, "Deployment", "media")]["spec"]["template"]["spec"]["containers"][0]

    def media_without_keys(os):
        spec = os[find(os, "Deployment", "media")]["spec"]["template"]["spec"]
        for v in spec["volumes"]:
            if v["name"] == "secrets":
                v["projected"]["sources"] = [
                    s for s in v["projected"]["sources"]
                    if not any(it["path"].startswith("s3_") for it in s["secret"]["items"])
                ] or [{"secret": {"name": "unrelated", "items": [{"key": "k", "path": "k"}]}}]

    def media_ops_port(os):
        media_container(os)["ports"][0]["containerPort"] = 9400

    def media_memory(os):
        media_container(os)["resources"]["limits"]["memory"] = "256Mi"

    def media_redis(os):
        media_container(os)["env"].append({"name": "CHAT__REDIS__URL", "value": "redis://chat-redis:6379/"})

    return [
        ("unknown field spec.replicaz in a Deployment", unknown_field),
        ("unknown field livenessprobe in a container", unknown_container_field),
        ("replicas given as a string", wrong_type),
        ("HPA as autoscaling/v2beta2 (not served by these versions)", removed_api),
        ("Deployment without its required selector", missing_required),
        ("readiness probe on a port the container lacks", probe_port),
        ("Service targetPort the pods lack", service_port),
        ("gateway without a preStop hook", no_prestop),
        ("gateway grace period shorter than preStop + drain", short_grace),
        ("chat-media without the object store's key files mounted", media_without_keys),
        ("chat-media's ops port not the one it listens on", media_ops_port),
        ("chat-media's memory limit below one decode", media_memory),
        ("chat-media given a store it does not use (Redis)", media_redis),
    ]


def self_test(objs, versions, external_services):
    base = check(objs, versions, external_services)
    if base:
        print("self-test: the unbroken objects do not pass:", *base, sep="\n  ")
        return False
    cases = breakages(objs)
    rejected = 0
    for what, mutate in cases:
        broken = copy.deepcopy(objs)
        mutate(broken)
        errs = check(broken, versions, external_services)
        if errs:
            rejected += 1
            print("self-test: rejected %s\n    %s" % (what, errs[0]))
        else:
            print("self-test: NOT REJECTED: %s" % what)
    print("self-test: %d/%d broken variants rejected" % (rejected, len(cases)))
    return rejected == len(cases)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", required=True, help="comma-separated Kubernetes versions")
    ap.add_argument("--external-service", action="append", default=[],
                    help="an Ingress backend Service the chart expects to exist outside it")
    ap.add_argument("--self-test", action="store_true",
                    help="also check that broken copies of the first file's objects are rejected")
    ap.add_argument("files", nargs="+", metavar="LABEL=FILE")
    a = ap.parse_args()
    versions = [v.strip() for v in a.versions.split(",") if v.strip()]
    supported = kv.all_versions()
    for v in versions:
        if kv.major_minor(v) not in [kv.major_minor(s) for s in supported]:
            raise SystemExit("kubernetes-validate %s has no schemas for %s (it has %s..%s)"
                             % (KV_VERSION, v, supported[0], supported[-1]))

    total, failed, sets = 0, False, []
    for arg in a.files:
        label, _, path = arg.partition("=")
        objs = load(path)
        sets.append(objs)
        errs = check(objs, versions, set(a.external_service))
        total += len(objs)
        kinds = {}
        for o in objs:
            kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
        print("%s: %d objects (%s): %s" % (label, len(objs),
              ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())),
              "ok" if not errs else "%d errors" % len(errs)))
        for e in errs:
            print("  " + e)
        failed |= bool(errs)
    if a.self_test and not self_test(sets[0], versions, set(a.external_service)):
        failed = True
    print("validated %d objects against Kubernetes %s (strict API schemas of kubernetes-validate %s): %s"
          % (total, " and ".join(versions), KV_VERSION, "FAILED" if failed else "all valid"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
