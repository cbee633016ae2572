"""The Kubernetes manifests (packaging/kubernetes): every overlay renders with
`kubectl kustomize`, every rendered object is valid against the Kubernetes API
schemas (and the Prometheus Operator's, for the PodMonitor), and the security
settings the README of packaging/kubernetes promises are in the rendered pods.

Needs, besides kubectl (with kustomize v5) and PyYAML:
  node, and the npm packages kubernetes-models and
  @kubernetes-models/prometheus-operator installed in a node_modules folder
  outside the repository: $QW_KUBERNETES_MODELS, default
  /var/cache/quorumwatch/npm/node_modules (tools/setup installs them there:
  npm install --prefix /var/cache/quorumwatch/npm kubernetes-models@5.1.0
  @kubernetes-models/prometheus-operator@6.0.0).
Without them the schema test fails and says so.

The schema check: those packages hold the API's OpenAPI schemas compiled into
validators (types, enums, formats, required fields), which do not reject
unknown field names; the validator script below runs each of them on a Proxy of
the object that records which keys the validator looked at, so a field the
schema does not have (a misspelt one) is reported too. The tests at the end
check that a misspelt field, a wrong type and an unhardened container are
caught.
"""

import copy
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KUBE = os.path.join(REPO, "packaging", "kubernetes")
OVERLAYS = ["daemonset", "sidecar", "kafka-consumer", "region-a", "region-b"]
MODELS = os.environ.get("QW_KUBERNETES_MODELS", "/var/cache/quorumwatch/npm/node_modules")
SETUP_HINT = ("tools/setup installs them: npm install --prefix /var/cache/quorumwatch/npm "
              "kubernetes-models@5.1.0 @kubernetes-models/prometheus-operator@6.0.0 "
              "(or point QW_KUBERNETES_MODELS at another node_modules folder)")
STATE_DIR = "/var/lib/quorumwatch"
WORKLOADS = ("DaemonSet", "Deployment", "StatefulSet")
REGIONS = {
    "region-a": ("http://alertmanager-0.monitoring-region-a.svc:9093",
                 "http://alertmanager-1.monitoring-region-a.svc:9093"),
    "region-b": ("http://alertmanager-0.monitoring-region-b.svc:9093",
                 "http://alertmanager-1.monitoring-region-b.svc:9093"),
}

VALIDATOR_JS = r"""
import { readFileSync, existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [modules, input] = process.argv.slice(2);
const objects = JSON.parse(readFileSync(input, "utf8"));
// The generator of kubernetes-models drops every property named
// "description" from its schemas (PriorityClass.description, ...).
const DROPPED = new Set(["description"]);

function modelFile(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const dir = group === "monitoring.coreos.com"
    ? join(modules, "@kubernetes-models/prometheus-operator", group, version)
    : join(modules, "kubernetes-models", group === "" ? version : join(group, version));
  const f = join(dir, kind + ".js");
  return existsSync(f) ? f : null;
}

async function schemaValidator(file) {
  const m = readFileSync(file, "utf8").match(/from\s*"((?:\.\.\/)+_schemas\/[A-Za-z0-9]+\.js)"/);
  if (!m) throw new Error("no compiled schema referenced by " + file);
  return (await import(new URL(m[1], pathToFileURL(file)).href)).validate;
}

// A Proxy recording, per path, the keys the validator looked at and whether
// it iterated the object as a map (labels, data, limits: any key is fine).
function track(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const rec = seen.get(path) || { keys: new Set(), iterated: false };
  seen.set(path, rec);
  return new Proxy(value, {
    get(t, k, r) {
      if (typeof k === "string") {
        if (!Array.isArray(t)) rec.keys.add(k);
        if (Object.prototype.hasOwnProperty.call(t, k)) return track(t[k], path + "/" + k, seen);
      }
      return Reflect.get(t, k, r);
    },
    has(t, k) { if (typeof k === "string") rec.keys.add(k); return Reflect.has(t, k); },
    getOwnPropertyDescriptor(t, k) {
      if (typeof k === "string") rec.keys.add(k);
      return Reflect.getOwnPropertyDescriptor(t, k);
    },
    ownKeys(t) { rec.iterated = true; return Reflect.ownKeys(t); },
  });
}

function unknownFields(value, path, seen, out) {
  if (value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, path + "/" + i, seen, out));
    return;
  }
  const rec = seen.get(path);
  // An object the validator never looked into has a free-form schema.
  const checked = rec && !rec.iterated && rec.keys.size > 0;
  for (const k of Object.keys(value)) {
    if (checked && !rec.keys.has(k) && !DROPPED.has(k)) out.push(path + "/" + k + ": unknown field");
    unknownFields(value[k], path + "/" + k, seen, out);
  }
}

function message(e) {
  const p = e.params || {};
  if (e.keyword === "type") return "must be " + p.type;
  if (e.keyword === "required") return "must have required property '" + p.missingProperty + "'";
  if (e.keyword === "enum") return "must be one of " + JSON.stringify(p.allowedValues);
  return e.keyword + " " + JSON.stringify(p);
}

const results = [];
for (const obj of objects) {
  const errors = [];
  const file = modelFile(obj && obj.apiVersion, obj && obj.kind);
  if (!file) {
    errors.push("no schema for apiVersion " + JSON.stringify(obj && obj.apiVersion) +
                " kind " + JSON.stringify(obj && obj.kind));
  } else {
    const validate = await schemaValidator(file);
    const seen = new Map();
    if (!validate(track(obj, "", seen))) {
      for (const e of validate.errors || []) errors.push((e.instancePath || "/") + ": " + message(e));
    }
    unknownFields(obj, "", seen, errors);
  }
  results.push(errors);
}
process.stdout.write(JSON.stringify(results));
"""


# --------------------------------------------------------------------------
# Rendering and the schema validator


def _render(overlay):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.fail("kubectl is not on PATH (the machine image has kubectl 1.32 with kustomize v5; "
                    "do not install Debian's kubernetes-client)", pytrace=False)
    p = subprocess.run([kubectl, "kustomize", os.path.join(KUBE, "overlays", overlay)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "kubectl kustomize overlays/%s failed:\n%s" % (overlay, p.stderr)
    return [d for d in yaml.safe_load_all(p.stdout) if d]


@pytest.fixture(scope="module")
def rendered():
    return {o: _render(o) for o in OVERLAYS}


@pytest.fixture(scope="module")
def schema_validate(tmp_path_factory):
    """schema_validate(objects) -> one list of errors per object."""
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed: the Kubernetes schema check runs kubernetes-models "
                    "under Node.js; " + SETUP_HINT, pytrace=False)
    for pkg in ("kubernetes-models", "@kubernetes-models/prometheus-operator"):
        if not os.path.isfile(os.path.join(MODELS, pkg, "package.json")):
            pytest.fail("the npm package %s is not installed in %s; %s" % (pkg, MODELS, SETUP_HINT),
                        pytrace=False)
    root = tmp_path_factory.mktemp("kube-schema")
    script = root / "validate.mjs"
    script.write_text(VALIDATOR_JS)
    n = [0]

    def validate(objects):
        n[0] += 1
        data = root / ("objects-%d.json" % n[0])
        data.write_text(json.dumps(objects))
        p = subprocess.run([node, str(script), MODELS, str(data)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, "the schema validator failed:\n" + p.stderr
        return json.loads(p.stdout)
    return validate


def _name(o):
    return "%s/%s" % (o.get("kind"), (o.get("metadata") or {}).get("name"))


def _pods(objects):
    """(workload, pod spec) for every workload."""
    return [(o, o["spec"]["template"]["spec"]) for o in objects if o.get("kind") in WORKLOADS]


def _one(objects, kind, name=None):
    found = [o for o in objects if o.get("kind") == kind and
             (name is None or o["metadata"]["name"].startswith(name))]
    assert len(found) == 1, "expected one %s %s, found %d" % (kind, name or "", len(found))
    return found[0]


def _config(objects):
    cm = _one(objects, "ConfigMap", "quorumwatch-config-")
    return cm, yaml.safe_load(cm["data"]["quorumwatch.yaml"])


# --------------------------------------------------------------------------
# The security checks, as functions of rendered objects (so the tests at the
# end can show they catch what they should)


def hardening_problems(objects):
    problems = []
    for wl, pod in _pods(objects):
        where = _name(wl)
        psc = pod.get("securityContext") or {}
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append("%s: pod seccompProfile is not RuntimeDefault" % where)
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append("%s: shares a host namespace" % where)
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for claim in wl["spec"].get("volumeClaimTemplates") or []:
            volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": {}}
        for c in (pod.get("initContainers") or []) + pod["containers"]:
            cw = "%s container %s" % (where, c["name"])
            init = c in (pod.get("initContainers") or [])
            sc = c.get("securityContext") or {}
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append("%s: readOnlyRootFilesystem is not true" % cw)
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("%s: allowPrivilegeEscalation is not false" % cw)
            if sc.get("privileged"):
                problems.append("%s: privileged" % cw)
            if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
                problems.append("%s: capabilities do not drop ALL" % cw)
            added = (sc.get("capabilities") or {}).get("add") or []
            user = sc.get("runAsUser", psc.get("runAsUser"))
            non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            # The one exception: the daemonset's init container that hands
            # the state hostPath to user 65532 runs as root with CHOWN only.
            if init and c["name"] == "state-dir-owner":
                if added != ["CHOWN"] or user != 0:
                    problems.append("%s: must be uid 0 with CHOWN only" % cw)
            else:
                if added:
                    problems.append("%s: adds capabilities %s" % (cw, added))
                if non_root is not True or not isinstance(user, int) or user == 0:
                    if not (non_root is True and user is None):
                        problems.append("%s: not runAsNonRoot with a non-zero runAsUser" % cw)
            res = c.get("resources") or {}
            if not (res.get("requests") or {}).get("memory") or not (res.get("limits") or {}).get("memory"):
                problems.append("%s: no memory request and limit" % cw)
            if not (res.get("requests") or {}).get("cpu"):
                problems.append("%s: no cpu request" % cw)
            if not init and not (c.get("livenessProbe") and c.get("readinessProbe")):
                problems.append("%s: no liveness and readiness probes" % cw)
            for m in c.get("volumeMounts") or []:
                v = volumes.get(m["name"])
                if v is None:
                    problems.append("%s: mounts unknown volume %s" % (cw, m["name"]))
                elif "hostPath" in v:
                    state = v["hostPath"]["path"] == STATE_DIR and m["mountPath"] == STATE_DIR
                    if not state and m.get("readOnly") is not True:
                        problems.append("%s: hostPath %s mounted writable" % (cw, v["hostPath"]["path"]))
                elif ("configMap" in v or "secret" in v) and m.get("readOnly") is not True:
                    problems.append("%s: %s mounted writable" % (cw, m["name"]))
    return problems


def detector_problems(objects):
    """The quorumwatch container of every workload: probes on the metrics
    port's /healthz and /readyz, that port declared, the config from the
    generated ConfigMap (with its hash suffix), the ban secret from a Secret."""
    problems = []
    cms = {o["metadata"]["name"] for o in objects if o.get("kind") == "ConfigMap"}
    for wl, pod in _pods(objects):
        c = next((c for c in pod["containers"] if c["name"] == "quorumwatch"), None)
        if c is None:
            problems.append("%s: no quorumwatch container" % _name(wl))
            continue
        where = _name(wl)
        ports = {p.get("name"): p for p in c.get("ports") or []}
        if (ports.get("metrics") or {}).get("containerPort") != 9464:
            problems.append("%s: no metrics port 9464" % where)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") != "metrics":
                problems.append("%s: %s is not GET %s on the metrics port" % (where, probe, path))
        if c.get("args", [])[:3] != ["run", "-c", "/etc/quorumwatch/quorumwatch.yaml"]:
            problems.append("%s: not `run -c /etc/quorumwatch/quorumwatch.yaml`" % where)
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        cfg = vols.get(mounts.get("/etc/quorumwatch")) or {}
        cm = (cfg.get("configMap") or {}).get("name", "")
        if not re.fullmatch(r"quorumwatch-config-[a-z0-9]{10}", cm) or cm not in cms:
            problems.append("%s: /etc/quorumwatch is not the generated ConfigMap (%r)" % (where, cm))
        sec = vols.get(mounts.get("/etc/quorumwatch/ban")) or {}
        if (sec.get("secret") or {}).get("secretName") != "quorumwatch-ban":
            problems.append("%s: the ban secret is not Secret quorumwatch-ban" % where)
        if c.get("image", "").split(":")[0].rsplit("/", 1)[-1] != "quorumwatch":
            problems.append("%s: image %r" % (where, c.get("image")))
    return problems


# --------------------------------------------------------------------------
# The rendered overlays


def test_every_overlay_is_valid_against_the_api_schemas(rendered, schema_validate):
    objects = [(o, obj) for o in OVERLAYS for obj in rendered[o]]
    results = schema_validate([obj for _, obj in objects])
    bad = ["overlays/%s %s: %s" % (o, _name(obj), "; ".join(errs))
           for (o, obj), errs in zip(objects, results) if errs]
    assert not bad, "objects not valid against the Kubernetes API schemas:\n" + "\n".join(bad)
    kinds = {obj["kind"] for _, obj in objects}
    assert {"DaemonSet", "Deployment", "StatefulSet", "PodMonitor", "Service",
            "ConfigMap", "ServiceAccount"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened(rendered, overlay):
    objects = rendered[overlay]
    assert _pods(objects), "overlays/%s has no workload" % overlay
    assert hardening_problems(objects) == []
    assert detector_problems(objects) == []
    # The base's objects are in every overlay, and no Secret with a value.
    for kind in ("ServiceAccount", "Service", "PodMonitor"):
        _one(objects, kind)
    assert not [o for o in objects if o["kind"] == "Secret"]
    pm = _one(objects, "PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize("overlay", ["daemonset", "region-a", "region-b"])
def test_daemonset(rendered, overlay):
    objects = rendered[overlay]
    ds = _one(objects, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    # Non-root, reading the 0640 root:root log files through group 0.
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532 and 0 in psc["supplementalGroups"]
    host = {v["hostPath"]["path"]: v["name"] for v in pod["volumes"] if "hostPath" in v}
    assert set(host) == {"/var/log/pods", "/var/log/containers", STATE_DIR}
    c = next(c for c in pod["containers"] if c["name"] == "quorumwatch")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for path in ("/var/log/pods", "/var/log/containers"):
        assert mounts[host[path]]["mountPath"] == path and mounts[host[path]]["readOnly"] is True
    assert mounts[host[STATE_DIR]]["mountPath"] == STATE_DIR
    assert {"key": "dedicated", "operator": "Equal", "value": "validator",
            "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["serviceAccountName"] == "quorumwatch" and pod["automountServiceAccountToken"] is False
    pc = _one(objects, "PriorityClass")
    assert pod["priorityClassName"] == pc["metadata"]["name"]
    ns = _one(objects, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    _, cfg = _config(objects)
    assert cfg["state_dir"] == STATE_DIR
    assert cfg["sources"][0]["include"] == ["/var/log/containers/*.log"]


def test_sidecar(rendered):
    objects = rendered["sidecar"]
    sts = _one(objects, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "hostPath" in v]
    containers = {c["name"]: c for c in pod["containers"]}
    assert sorted(containers) == ["gaiad", "quorumwatch"], sorted(containers)
    validator, qw = containers["gaiad"], containers["quorumwatch"]
    assert qw["securityContext"]["runAsUser"] == 65532
    # Both containers share the validator's log folder, read-only for quorumwatch.
    logs = next(m for m in qw["volumeMounts"] if m["name"] == "validator-logs")
    assert logs["readOnly"] is True
    assert any(m["name"] == "validator-logs" for m in validator["volumeMounts"])
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == "validator-logs")
    _, cfg = _config(objects)
    assert cfg["sources"][0]["include"] == [logs["mountPath"] + "/*.log"]
    # The Service and PodMonitor select the pods carrying the detector.
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert _one(objects, "Service")["spec"]["selector"].items() <= labels.items()
    assert _one(objects, "PodMonitor")["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kafka_consumer(rendered):
    objects = rendered["kafka-consumer"]
    dep = _one(objects, "Deployment")
    # Several members share the partitions; the chains' state follows them
    # through the changelog (docs/KAFKA.md, "State handoff").
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert not [v for v in pod["volumes"] if "hostPath" in v]
    ns = _one(objects, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    _, cfg = _config(objects)
    assert [s["type"] for s in cfg["sources"]] == ["kafka"]
    assert cfg["sources"][0]["group"] == "quorumwatch"
    assert cfg["sources"][0]["state_topic"] == "quorumwatch-state"


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_region_overlay(rendered, region):
    objects = rendered[region]
    for o in objects:
        assert o["metadata"]["labels"]["topology.example.com/region"] == region, _name(o)
    ds = _one(objects, "DaemonSet")
    assert ds["spec"]["template"]["metadata"]["labels"]["topology.example.com/region"] == region
    _, cfg = _config(objects)
    am = next(s for s in cfg["sinks"] if s["type"] == "alertmanager")
    assert tuple(am["urls"]) == REGIONS[region]
    assert am["labels"]["region"] == region
    pm = _one(objects, "PodMonitor")
    assert {"action": "replace", "targetLabel": "region", "replacement": region} in \
        pm["spec"]["podMetricsEndpoints"][0]["relabelings"]
    # The region's ConfigMap (another hash) is the one the pods mount.
    base_cm, _ = _config(rendered["daemonset"])
    cm, _ = _config(objects)
    assert cm["metadata"]["name"] != base_cm["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_is_accepted_by_quorumwatch(rendered, overlay, qw_bin, tmp_path):
    """The rendered quorumwatch.yaml parses (unknown keys are refused with
    file:line): `bans list -c` reads the whole configuration, then its
    state_dir (moved to an empty temporary folder)."""
    cm, cfg = _config(rendered[overlay])
    text = re.sub(r"(?m)^state_dir: .*$", "state_dir: %s" % (tmp_path / "state"),
                  cm["data"]["quorumwatch.yaml"])
    path = tmp_path / "quorumwatch.yaml"
    path.write_text(text)
    p = subprocess.run([qw_bin, "bans", "list", "-c", str(path)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, "quorumwatch refused overlays/%s's configuration:\n%s" % (overlay, p.stderr)


# --------------------------------------------------------------------------
# The checks catch what they should


def test_the_schema_check_catches_misspelt_fields_and_wrong_types(rendered, schema_validate):
    ds = _one(rendered["daemonset"], "DaemonSet")
    pm = _one(rendered["daemonset"], "PodMonitor")
    svc = _one(rendered["daemonset"], "Service")
    mutants = []
    m = copy.deepcopy(ds)  # a misspelt container field
    c = m["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    mutants.append(("/spec/template/spec/containers/0/readinesProbe: unknown field", m))
    m = copy.deepcopy(ds)  # a misspelt field in a nested object
    m["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    mutants.append(("/spec/template/spec/securityContext/runAsNonroot: unknown field", m))
    m = copy.deepcopy(ds)  # a wrong type
    m["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = "65532"
    mutants.append(("/spec/template/spec/securityContext/runAsUser: must be integer", m))
    m = copy.deepcopy(ds)  # a missing required field
    del m["spec"]["selector"]
    mutants.append(("/spec: must have required property 'selector'", m))
    m = copy.deepcopy(pm)  # the PodMonitor's CRD schema is checked too
    m["spec"]["podMetricEndpoints"] = m["spec"].pop("podMetricsEndpoints")
    mutants.append(("/spec/podMetricEndpoints: unknown field", m))
    m = copy.deepcopy(svc)
    m["spec"]["ports"][0]["port"] = "9464"
    mutants.append(("/spec/ports/0/port: must be integer", m))
    m = copy.deepcopy(svc)
    m["kind"] = "Servcie"
    mutants.append(('no schema for apiVersion "v1" kind "Servcie"', m))
    results = schema_validate([m for _, m in mutants])
    for (want, _), errs in zip(mutants, results):
        assert any(e.startswith(want) for e in errs), "expected %r, got %r" % (want, errs)


def test_the_security_checks_catch_an_unhardened_pod(rendered):
    objects = rendered["daemonset"]

    def mutated(change):
        objs = copy.deepcopy(objects)
        change(_one(objs, "DaemonSet")["spec"]["template"]["spec"])
        return hardening_problems(objs) + detector_problems(objs)

    def qw(pod):
        return next(c for c in pod["containers"] if c["name"] == "quorumwatch")

    cases = [
        ("readOnlyRootFilesystem is not true",
         lambda pod: qw(pod)["securityContext"].pop("readOnlyRootFilesystem")),
        ("allowPrivilegeEscalation is not false",
         lambda pod: qw(pod)["securityContext"].update(allowPrivilegeEscalation=True)),
        ("capabilities do not drop ALL",
         lambda pod: qw(pod)["securityContext"]["capabilities"].update(drop=["NET_RAW"])),
        ("adds capabilities",
         lambda pod: qw(pod)["securityContext"]["capabilities"].update(add=["DAC_READ_SEARCH"])),
        ("not runAsNonRoot",
         lambda pod: pod["securityContext"].update(runAsUser=0, runAsNonRoot=False)),
        ("hostPath /var/log/pods mounted writable",
         lambda pod: [m.pop("readOnly") for m in qw(pod)["volumeMounts"]
                      if m["mountPath"] == "/var/log/pods"]),
        ("no memory request and limit", lambda pod: qw(pod).pop("resources")),
        ("no liveness and readiness probes", lambda pod: qw(pod).pop("livenessProbe")),
        ("readinessProbe is not GET /readyz",
         lambda pod: qw(pod)["readinessProbe"]["httpGet"].update(path="/ready")),
        ("seccompProfile is not RuntimeDefault", lambda pod: pod["securityContext"].pop("seccompProfile")),
        ("is not the generated ConfigMap",
         lambda pod: [v["configMap"].update(name="quorumwatch-config")
                      for v in pod["volumes"] if "configMap" in v]),
    ]
    for want, change in cases:
        problems = mutated(change)
        assert any(want in p for p in problems), "%r not reported: %r" % (want, problems)
