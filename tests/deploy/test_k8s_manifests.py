"""Render the Kubernetes base in deploy/k8s and check it.

Every rendered object is validated against the Kubernetes OpenAPI schemas that
``kubernetes-validate`` ships offline (strict mode: unknown fields fail), then
Strata-specific invariants are asserted: etcd version floor, replica counts,
probes and resources, PDB/Service/HPA targets, the tier1/tier2 command-line
contracts, no RBAC and no committed secrets. A second tier2 pool is generated
from the shipped one (as README.md tells operators to) and checked the same way.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.version import InvalidVersion, Version

Obj = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_DIR = REPO_ROOT / "deploy" / "k8s"
NAMESPACE = "strata"
PART_OF = ("app.kubernetes.io/part-of", "strata")

ETCD_IMAGE_REPO = "gcr.io/etcd-development/etcd"
# 3.5.0-3.5.2 can diverge after SIGKILL (fixed in 3.5.3); 3.5.6+ is recommended.
ETCD_MIN_VERSION = Version("3.5.6")

# Oldest Kubernetes minor we claim to support, plus the newest schema shipped.
K8S_VERSIONS = sorted(
    {"1.30", ".".join(kubernetes_validate.latest_version().split(".")[:2])},
    key=Version,
)

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})

CONTROL_GRPC = "control.strata.svc:8091"
STATE_DIR = "/var/lib/strata"
# `--drain-s` default of tier1/tier2: seconds to finish in-flight requests on SIGTERM.
DRAIN_S = 10
POOL_LABEL = "strata.io/pool"
SHIPPED_POOL = "default"
TIER2_POOL_FILES = ("deployment", "service", "pdb")  # tier2-<pool>-<part>.yaml
VLLM_EXAMPLE = BASE_DIR / "vllm-headless-service.example.yaml"


# --------------------------------------------------------------------------- helpers


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH: it is needed to render deploy/k8s (kubectl kustomize)")
    return kubectl


def _render(directory: Path) -> list[Obj]:
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize failed:\n{proc.stderr}"
    # Deprecated kustomize fields (e.g. commonLabels) print warnings; keep it clean.
    assert "warning" not in proc.stderr.lower(), proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    assert docs, "kustomize rendered no objects"
    for doc in docs:
        assert isinstance(doc, dict), f"non-mapping YAML document: {doc!r}"
    return docs


@pytest.fixture(scope="module")
def rendered() -> list[Obj]:
    return _render(BASE_DIR)


def _name(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def _one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def _workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def _pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def _pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def _containers(workload: Obj) -> Iterator[Obj]:
    spec = _pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; an empty selector matches everything."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            raise AssertionError(f"unknown selector operator {op!r}")
    return True


def _image_version(image: str) -> tuple[str, Version]:
    """Split ``repo:tag[@digest]`` and parse the tag as a semantic version."""
    ref = image.split("@", 1)[0]
    repo, sep, tag = ref.rpartition(":")
    assert sep and "/" not in tag, f"image {image!r} has no tag; pin an explicit version"
    try:
        return repo, Version(tag.removeprefix("v"))
    except InvalidVersion as exc:
        raise AssertionError(f"image tag {tag!r} of {image!r} is not a version") from exc


def _flags(args: list[str]) -> dict[str, str]:
    """Parse ``--k=v`` and ``--k v`` style arguments into a dict."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        assert arg.startswith("--"), f"unexpected positional argument {arg!r} in {args}"
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            key = arg[2:]
            value = args[i + 1]
            i += 2
        assert key not in out, f"flag --{key} given twice"
        out[key] = value
    return out


def _container_port(container: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            number: int = p["containerPort"]
            return number
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


# --------------------------------------------------------------------------- schema


def _schema_errors(objs: list[Obj], k8s_version: str) -> list[str]:
    errors: list[str] = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{_name(obj)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{_name(obj)}: {exc.message}")
    return errors


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_every_object_validates_against_kubernetes_schema(
    rendered: list[Obj], k8s_version: str
) -> None:
    errors = _schema_errors(rendered, k8s_version)
    assert not errors, "\n".join(errors)


def test_expected_objects_namespace_and_labels(rendered: list[Obj]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    expected = {
        ("Namespace", NAMESPACE),
        ("StatefulSet", "etcd"),
        ("Service", "etcd-peer"),
        ("Service", "etcd-client"),
        ("PodDisruptionBudget", "etcd"),
        ("Deployment", "strata-control"),
        ("Service", "control"),
        ("PodDisruptionBudget", "strata-control"),
        ("ServiceAccount", "strata-control"),
        ("Deployment", "strata-tier1"),
        ("Service", "tier1"),
        ("HorizontalPodAutoscaler", "strata-tier1"),
        ("PodDisruptionBudget", "strata-tier1"),
        ("ServiceAccount", "strata-tier1"),
        ("Deployment", f"strata-tier2-{SHIPPED_POOL}"),
        ("Service", f"tier2-{SHIPPED_POOL}"),
        ("PodDisruptionBudget", f"strata-tier2-{SHIPPED_POOL}"),
        ("ServiceAccount", "strata-tier2"),
    }
    assert expected <= kinds, f"missing: {sorted(expected - kinds)}"
    for obj in rendered:
        meta = obj["metadata"]
        if obj["kind"] != "Namespace":
            assert meta.get("namespace") == NAMESPACE, f"{_name(obj)} not in {NAMESPACE}"
        assert meta.get("labels", {}).get(PART_OF[0]) == PART_OF[1], _name(obj)
    for wl in _workloads(rendered):
        assert _pod_labels(wl).get(PART_OF[0]) == PART_OF[1], f"{_name(wl)} pod template"


def test_no_secret_material_is_rendered(rendered: list[Obj]) -> None:
    for obj in _of_kind(rendered, "Secret"):
        assert not obj.get("data") and not obj.get("stringData"), (
            f"{_name(obj)} carries secret data; secrets must be created out of band"
        )
    # The example secret ships fully commented out and is not a kustomize resource.
    example = BASE_DIR / "admin-token-secret.example.yaml"
    assert example.is_file()
    assert [d for d in yaml.safe_load_all(example.read_text()) if d is not None] == []
    kustomization = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text())
    assert example.name not in kustomization.get("resources", [])
    assert not kustomization.get("secretGenerator"), "no secrets generated from the base"


def test_no_rbac_objects_are_rendered(rendered: list[Obj]) -> None:
    # control uses etcd, tier2 finds model servers by DNS: nothing reads the API.
    rbac = [_name(o) for o in rendered if o["kind"] in RBAC_KINDS]
    assert not rbac, f"the base must ship no RBAC objects, found {rbac}"
    for sa in _of_kind(rendered, "ServiceAccount"):
        assert sa.get("automountServiceAccountToken") is False, _name(sa)


# --------------------------------------------------------------------------- etcd


def test_etcd_image_is_official_and_at_least_3_5_6(rendered: list[Obj]) -> None:
    sts = _one(rendered, "StatefulSet", "etcd")
    images = [c["image"] for c in _containers(sts)]
    assert images, "etcd StatefulSet has no containers"
    for image in images:
        repo, version = _image_version(image)
        assert repo == ETCD_IMAGE_REPO, f"unexpected etcd image repository {repo!r}"
        assert version >= ETCD_MIN_VERSION, (
            f"etcd {version} < {ETCD_MIN_VERSION}: 3.5.0-3.5.2 can diverge after SIGKILL"
        )
        assert version.major == 3, f"etcd {version}: flags and probes assume etcd v3"


def test_etcd_statefulset_is_a_persistent_three_member_cluster(rendered: list[Obj]) -> None:
    sts = _one(rendered, "StatefulSet", "etcd")
    spec = sts["spec"]
    assert spec["replicas"] == 3
    # A lone member never becomes Ready, so OrderedReady would deadlock bootstrap.
    assert spec.get("podManagementPolicy") == "Parallel"

    vcts = spec.get("volumeClaimTemplates", [])
    assert len(vcts) == 1
    vct = vcts[0]
    assert vct["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert vct["spec"]["resources"]["requests"]["storage"]

    (container,) = _pod_spec(sts)["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert vct["metadata"]["name"] in mounts
    flags = _flags(container["args"])
    assert flags["data-dir"].startswith(mounts[vct["metadata"]["name"]] + "/"), (
        "etcd data dir must live on the persistent volume"
    )

    # Peer service: headless, publishes not-ready addresses.
    peer = _one(rendered, "Service", spec["serviceName"])
    assert peer["spec"].get("clusterIP") == "None"
    assert peer["spec"].get("publishNotReadyAddresses") is True

    # Static bootstrap from the stable pod DNS names of exactly these replicas.
    env_names = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    assert env_names["POD_NAME"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env_names["POD_NAMESPACE"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert flags["name"] == "$(POD_NAME)"
    sts_name, svc = sts["metadata"]["name"], spec["serviceName"]
    members = dict(m.split("=", 1) for m in flags["initial-cluster"].split(","))
    assert members == {
        f"{sts_name}-{i}": f"http://{sts_name}-{i}.{svc}.$(POD_NAMESPACE).svc:2380"
        for i in range(spec["replicas"])
    }
    assert (
        flags["initial-advertise-peer-urls"]
        == f"http://$(POD_NAME).{svc}.$(POD_NAMESPACE).svc:2380"
    )
    assert flags["initial-cluster-state"] == "new"

    # Probes: readiness requires quorum; liveness stays member-local.
    ready = container["readinessProbe"]["httpGet"]
    live = container["livenessProbe"]["httpGet"]
    assert _container_port(container, ready["port"]) == 2379
    assert _container_port(container, live["port"]) == 2379
    assert ready["path"] == "/health"
    assert live["path"].startswith("/health?") and "serializable=true" in live["path"]

    client = _one(rendered, "Service", "etcd-client")
    ports = {p["port"] for p in client["spec"]["ports"]}
    assert 2379 in ports


def test_etcd_pdb_allows_at_most_one_member_down(rendered: list[Obj]) -> None:
    pdb = _one(rendered, "PodDisruptionBudget", "etcd")
    assert pdb["spec"].get("maxUnavailable") == 1
    assert "minAvailable" not in pdb["spec"]


# --------------------------------------------------------------------------- control


def test_control_deployment_contract(rendered: list[Obj]) -> None:
    dep = _one(rendered, "Deployment", "strata-control")
    assert dep["spec"]["replicas"] == 2
    pod = _pod_spec(dep)
    (container,) = pod["containers"]
    assert container["command"] == ["strata", "control"]
    flags = _flags(container["args"])
    assert flags == {
        "rest-host": "0.0.0.0",
        "rest-port": "8090",
        "grpc-host": "0.0.0.0",
        "grpc-port": "8091",
        "etcd-endpoints": "etcd-client.strata.svc:2379",
        "admin-token-file": "/etc/strata/admin-token/token",
    }
    # The endpoint must point at the rendered etcd client Service and port.
    host, _, port = flags["etcd-endpoints"].partition(":")
    svc_name, svc_ns = host.split(".")[:2]
    etcd_client = _one(rendered, "Service", svc_name)
    assert svc_ns == etcd_client["metadata"]["namespace"]
    assert int(port) in {p["port"] for p in etcd_client["spec"]["ports"]}

    env = {e["name"]: e for e in container["env"]}
    assert env["STRATA_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["STRATA_ADVERTISE_ADDRESS"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"rest": 8090, "grpc": 8091}
    ready = container["readinessProbe"]["httpGet"]
    live = container["livenessProbe"]["httpGet"]
    assert (ready["path"], _container_port(container, ready["port"])) == ("/readyz", 8090)
    assert (live["path"], _container_port(container, live["port"])) == ("/healthz", 8090)

    # Admin token comes from Secret strata-admin-token/token at the flag's path.
    token_path = Path(flags["admin-token-file"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(token_path.parent))
    assert mount.get("readOnly") is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "strata-admin-token"
    assert {i["key"]: i["path"] for i in volume["secret"]["items"]} == {"token": token_path.name}

    # No Kubernetes API access.
    sa = _one(rendered, "ServiceAccount", pod["serviceAccountName"])
    assert sa.get("automountServiceAccountToken") is False
    assert pod.get("automountServiceAccountToken") is False

    # Spread replicas across nodes.
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        and _selector_matches(t["podAffinityTerm"]["labelSelector"], _pod_labels(dep))
        for t in terms
    )


def test_control_service_ports(rendered: list[Obj]) -> None:
    svc = _one(rendered, "Service", "control")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert set(ports) == {"rest", "grpc"}
    assert ports["rest"]["port"] == 8090
    assert ports["grpc"]["port"] == 8091
    assert ports["grpc"].get("appProtocol") == "grpc"


def test_control_pdb_keeps_one_replica(rendered: list[Obj]) -> None:
    pdb = _one(rendered, "PodDisruptionBudget", "strata-control")
    assert pdb["spec"].get("minAvailable") == 1


# --------------------------------------------------------------------------- tier1 / tier2


def _only_container(workload: Obj) -> Obj:
    containers = _pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{_name(workload)}: expected one container"
    container: Obj = containers[0]
    return container


def _prestop_sleep_seconds(container: Obj) -> int:
    """Seconds of the preStop pause: the kubelet sleep action or `exec: sleep N`."""
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        seconds: int = pre_stop["sleep"]["seconds"]
        return seconds
    command = pre_stop.get("exec", {}).get("command", [])
    assert len(command) == 2 and command[0] in {"sleep", "/bin/sleep"}, (
        f"container {container['name']} has no preStop sleep: {pre_stop!r}"
    )
    return int(command[1])


def _assert_points_at_control_grpc(objs: list[Obj], address: str) -> None:
    host, _, port = address.rpartition(":")
    svc_name, svc_ns, suffix = host.split(".", 2)
    assert suffix in {"svc", "svc.cluster.local"}, f"{address} is not a Service DNS name"
    svc = _one(objs, "Service", svc_name)
    assert svc["metadata"]["namespace"] == svc_ns, address
    ports = {p["port"]: p for p in svc["spec"]["ports"]}
    assert int(port) in ports, f"{address}: Service {svc_name} has no port {port}"
    assert ports[int(port)]["name"] == "grpc", f"{address} is not the control gRPC port"
    _one(objs, "Deployment", "strata-control")  # the pods behind it


def _assert_tier_node(objs: list[Obj], dep: Obj, *, port: int) -> dict[str, str]:
    """Shared contract of `strata tier1` / `strata tier2` pods; returns the parsed flags."""
    where = _name(dep)
    pod = _pod_spec(dep)
    container = _only_container(dep)
    flags = _flags(container["args"])
    assert flags["host"] == "0.0.0.0", where
    assert flags["port"] == str(port), where
    assert flags["control"] == CONTROL_GRPC, where
    assert flags["state-dir"] == STATE_DIR, where
    _assert_points_at_control_grpc(objs, flags["control"])

    env = {e["name"]: e for e in container["env"]}
    assert env["STRATA_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", where

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}, where
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for kind, get in probes.items():
        assert _container_port(container, get["port"]) == port, f"{where} {kind}"
    assert probes["readinessProbe"]["path"] == "/readyz", where
    assert probes["livenessProbe"]["path"] == "/healthz", where
    assert probes["startupProbe"]["path"] == "/healthz", where

    # The root FS is read-only; the snapshot dir must be a writable emptyDir.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
    mount = next((m for m in container["volumeMounts"] if m["mountPath"] == STATE_DIR), None)
    assert mount is not None, f"{where}: nothing mounted at {STATE_DIR}"
    assert not mount.get("readOnly", False), f"{where}: {STATE_DIR} mounted read-only"
    assert not mount.get("subPath"), where
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume, f"{where}: {STATE_DIR} must be an emptyDir"

    # Graceful stop: leave the endpoints first, then drain, all inside the grace period.
    pause = _prestop_sleep_seconds(container)
    assert 3 <= pause <= 10, f"{where}: preStop sleep {pause}s"
    grace = pod["terminationGracePeriodSeconds"]
    assert pause + DRAIN_S < grace, f"{where}: {pause}s + {DRAIN_S}s drain >= {grace}s grace"

    sa = _one(objs, "ServiceAccount", pod["serviceAccountName"])
    assert sa.get("automountServiceAccountToken") is False, where
    assert pod.get("automountServiceAccountToken") is False, where

    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert any(
        t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        and _selector_matches(t["podAffinityTerm"]["labelSelector"], _pod_labels(dep))
        for t in terms
    ), f"{where}: no preferred anti-affinity across nodes"
    return flags


def _assert_service_exposes(objs: list[Obj], name: str, dep: Obj, port: int) -> None:
    svc = _one(objs, "Service", name)
    assert _selector_matches({"matchLabels": svc["spec"]["selector"]}, _pod_labels(dep))
    ports = [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]]
    assert ports == [("http", port, "http")], f"{_name(svc)}: {ports}"


def test_tier1_deployment_contract(rendered: list[Obj]) -> None:
    dep = _one(rendered, "Deployment", "strata-tier1")
    container = _only_container(dep)
    assert container["command"] == ["strata", "tier1"]
    flags = _assert_tier_node(rendered, dep, port=8080)
    assert flags == {
        "host": "0.0.0.0",
        "port": "8080",
        "control": CONTROL_GRPC,
        "workers": "2",
        "state-dir": STATE_DIR,
    }
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    pod = _pod_spec(dep)
    assert pod["serviceAccountName"] == "strata-tier1"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert _prestop_sleep_seconds(container) == 5
    # The HPA owns the replica count; a fixed one would be reset on every apply.
    assert "replicas" not in dep["spec"], "strata-tier1 replicas are owned by its HPA"

    spread = pod["topologySpreadConstraints"]
    assert any(
        c["topologyKey"] == "topology.kubernetes.io/zone"
        and c["whenUnsatisfiable"] == "ScheduleAnyway"
        and _selector_matches(c["labelSelector"], _pod_labels(dep))
        for c in spread
    ), "tier1 must spread across zones (ScheduleAnyway)"

    _assert_service_exposes(rendered, "tier1", dep, 80)
    pdb = _one(rendered, "PodDisruptionBudget", "strata-tier1")
    assert pdb["spec"].get("maxUnavailable") == 1
    assert _selector_matches(pdb["spec"]["selector"], _pod_labels(dep))


def test_tier1_hpa_scales_the_tier1_deployment_on_cpu(rendered: list[Obj]) -> None:
    hpas = _of_kind(rendered, "HorizontalPodAutoscaler")
    targets = [
        (h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"]) for h in hpas
    ]
    assert len(targets) == len(set(targets)), f"a workload has two HPAs: {targets}"
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        target = _one(rendered, ref["kind"], ref["name"])
        assert ref["apiVersion"] == target["apiVersion"], _name(hpa)
        assert hpa["metadata"]["namespace"] == target["metadata"]["namespace"], _name(hpa)

    hpa = _one(rendered, "HorizontalPodAutoscaler", "strata-tier1")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "strata-tier1",
    }
    assert spec["minReplicas"] >= 2, "one tier1 pod is a single point of failure"
    assert spec["minReplicas"] == 3
    assert spec["maxReplicas"] == 20
    cpu = [
        m["resource"]["target"]
        for m in spec["metrics"]
        if m["type"] == "Resource" and m["resource"]["name"] == "cpu"
    ]
    assert cpu == [{"type": "Utilization", "averageUtilization": 70}]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    # Utilization is relative to requests: every container must request CPU.
    dep = _one(rendered, "Deployment", "strata-tier1")
    for c in _containers(dep):
        assert "cpu" in c["resources"]["requests"], f"{c['name']} has no CPU request"


def _assert_tier2_pool(objs: list[Obj], pool: str) -> None:
    dep = _one(objs, "Deployment", f"strata-tier2-{pool}")
    where = _name(dep)
    container = _only_container(dep)
    assert container["command"] == ["strata", "tier2"], where
    flags = _assert_tier_node(objs, dep, port=8180)
    assert flags == {
        "pool": pool,
        "host": "0.0.0.0",
        "port": "8180",
        "control": CONTROL_GRPC,
        "state-dir": STATE_DIR,
    }, where
    # The pool label is part of the identity: metadata, selector and pods.
    assert dep["metadata"]["labels"][POOL_LABEL] == pool, where
    assert dep["spec"]["selector"]["matchLabels"][POOL_LABEL] == pool, where
    assert _pod_labels(dep)[POOL_LABEL] == pool, where
    assert dep["spec"]["replicas"] == 2, where
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }, where
    assert _pod_spec(dep)["serviceAccountName"] == "strata-tier2", where

    _assert_service_exposes(objs, f"tier2-{pool}", dep, 8180)
    svc = _one(objs, "Service", f"tier2-{pool}")
    assert svc["spec"]["selector"][POOL_LABEL] == pool
    pdb = _one(objs, "PodDisruptionBudget", f"strata-tier2-{pool}")
    assert pdb["spec"].get("maxUnavailable") == 1
    assert pdb["spec"]["selector"]["matchLabels"][POOL_LABEL] == pool


def test_tier2_pool_label_matches_pool_arg(rendered: list[Obj]) -> None:
    tier2 = [
        d
        for d in _of_kind(rendered, "Deployment")
        if _pod_labels(d).get("app.kubernetes.io/component") == "tier2"
    ]
    assert tier2, "no tier2 Deployment rendered"
    for dep in tier2:
        flags = _flags(_only_container(dep)["args"])
        assert _pod_labels(dep).get(POOL_LABEL) == flags["pool"], _name(dep)
        assert dep["metadata"]["name"] == f"strata-tier2-{flags['pool']}"


def test_tier2_default_pool_contract(rendered: list[Obj]) -> None:
    _assert_tier2_pool(rendered, SHIPPED_POOL)


def test_a_second_pool_copied_from_the_shipped_one_is_consistent(tmp_path: Path) -> None:
    """README.md: copy tier2-default-*.yaml replacing "default" with the new pool name."""
    shipped = sorted(p.name for p in BASE_DIR.glob(f"tier2-{SHIPPED_POOL}-*.yaml"))
    assert shipped == sorted(f"tier2-{SHIPPED_POOL}-{part}.yaml" for part in TIER2_POOL_FILES)
    base = tmp_path / "k8s"
    shutil.copytree(BASE_DIR, base)
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    for name in shipped:
        assert name in kustomization["resources"], f"{name} missing from kustomization.yaml"
        new_name = name.replace(SHIPPED_POOL, "gpu")
        (base / new_name).write_text((base / name).read_text().replace(SHIPPED_POOL, "gpu"))
        kustomization["resources"].append(new_name)
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))

    objs = _render(base)
    errors = _schema_errors(objs, K8S_VERSIONS[-1])
    assert not errors, "\n".join(errors)
    for pool in (SHIPPED_POOL, "gpu"):
        _assert_tier2_pool(objs, pool)
    _assert_each_pdb_selects_exactly_one_workload(objs)
    _assert_services_select_existing_pods_and_ports(objs)


def _commented_pool(text: str) -> Obj:
    """The Pool resource written as `# ...` comment lines in the vLLM example."""
    lines = text.splitlines()
    assert "# kind: Pool" in lines, "the example must show the matching Pool resource"
    block: list[str] = []
    for line in lines[lines.index("# kind: Pool") :]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    pool: Obj = yaml.safe_load(textwrap.dedent("\n".join(block)))
    return pool


def test_vllm_headless_service_example_matches_the_pool(rendered: list[Obj]) -> None:
    kustomization = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text())
    assert VLLM_EXAMPLE.name not in kustomization["resources"]
    text = VLLM_EXAMPLE.read_text()
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert len(docs) == 1, "the example holds exactly the headless Service"
    (svc,) = docs
    assert svc["kind"] == "Service"
    for version in K8S_VERSIONS:
        errors = _schema_errors([svc], version)
        assert not errors, "\n".join(errors)
    assert svc["spec"]["clusterIP"] == "None", "DNS discovery needs a headless Service"
    # Only Ready model servers may resolve.
    assert svc["spec"].get("publishNotReadyAddresses", False) is False
    assert svc["spec"]["selector"], "the example must select the vLLM pods"
    svc_ports = {p["port"] for p in svc["spec"]["ports"]}
    assert svc_ports == {8000}

    pool = _commented_pool(text)
    assert pool["kind"] == "Pool"
    assert pool["name"] == SHIPPED_POOL
    name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
    assert pool["spec"]["endpoints"] == {
        "type": "dns",
        "name": f"{name}.{ns}.svc.cluster.local",
        "port": 8000,
    }
    tier2_svc = _one(rendered, "Service", f"tier2-{pool['name']}")
    tier2_port = tier2_svc["spec"]["ports"][0]["port"]
    tier2_ns = tier2_svc["metadata"]["namespace"]
    assert pool["spec"]["tier2"] == [f"tier2-{pool['name']}.{tier2_ns}.svc:{tier2_port}"]
    _one(rendered, "Deployment", f"strata-tier2-{pool['name']}")

    # Strata's own config parser accepts the snippet as written.
    from common.config.resources import parse_resource

    assert parse_resource(pool).kind == "Pool"


# --------------------------------------------------------------------------- all workloads


def test_every_container_has_resources_and_probes(rendered: list[Obj]) -> None:
    workloads = _workloads(rendered)
    assert workloads
    for wl in workloads:
        for c in _pod_spec(wl)["containers"]:
            where = f"{_name(wl)} container {c['name']}"
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in c, f"{where} has no {probe}"


def test_every_pod_runs_locked_down(rendered: list[Obj]) -> None:
    for wl in _workloads(rendered):
        pod = _pod_spec(wl)
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, _name(wl)
        assert pod.get("automountServiceAccountToken") is False, _name(wl)
        for c in _containers(wl):
            where = f"{_name(wl)} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            image = c["image"]
            assert not image.endswith(":latest") or image == "strata:latest", (
                f"{where}: only the strata placeholder may use :latest"
            )


def test_workload_selectors_match_their_templates(rendered: list[Obj]) -> None:
    for wl in _workloads(rendered):
        assert _selector_matches(wl["spec"]["selector"], _pod_labels(wl)), _name(wl)


def _assert_each_pdb_selects_exactly_one_workload(objs: list[Obj]) -> None:
    workloads = _workloads(objs)
    pdbs = _of_kind(objs, "PodDisruptionBudget")
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]
        assert selector.get("matchLabels") or selector.get("matchExpressions"), (
            f"{_name(pdb)} has an empty selector (would match every pod)"
        )
        matched = [
            _name(w)
            for w in workloads
            if w["metadata"]["namespace"] == pdb["metadata"]["namespace"]
            and _selector_matches(selector, _pod_labels(w))
        ]
        assert len(matched) == 1, f"{_name(pdb)} matches {matched}"
    # Every long-running workload is covered (etcd, control, tier1, each tier2 pool).
    for wl in workloads:
        if wl["kind"] not in {"StatefulSet", "Deployment"}:
            continue
        assert any(_selector_matches(p["spec"]["selector"], _pod_labels(wl)) for p in pdbs), (
            f"no PodDisruptionBudget covers {_name(wl)}"
        )


def test_each_pdb_selects_exactly_one_workload(rendered: list[Obj]) -> None:
    _assert_each_pdb_selects_exactly_one_workload(rendered)
    for name in (
        ("StatefulSet", "etcd"),
        ("Deployment", "strata-control"),
        ("Deployment", "strata-tier1"),
        ("Deployment", f"strata-tier2-{SHIPPED_POOL}"),
    ):
        _one(rendered, *name)


def _assert_services_select_existing_pods_and_ports(objs: list[Obj]) -> None:
    workloads = _workloads(objs)
    for svc in _of_kind(objs, "Service"):
        selector = svc["spec"].get("selector")
        assert selector, f"{_name(svc)} has no selector"
        matched = [
            w
            for w in workloads
            if w["metadata"]["namespace"] == svc["metadata"]["namespace"]
            and _selector_matches({"matchLabels": selector}, _pod_labels(w))
        ]
        assert matched, f"{_name(svc)} selects no pods"
        # One Service, one workload: e.g. tier2-<pool> must not reach another pool.
        assert len(matched) == 1, f"{_name(svc)} selects {[_name(w) for w in matched]}"
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for wl in matched:
                container_ports = {
                    p.get("name"): p["containerPort"]
                    for c in _pod_spec(wl)["containers"]
                    for p in c.get("ports", [])
                }
                if isinstance(target, str):
                    assert target in container_ports, (
                        f"{_name(svc)} targetPort {target!r} not a port of {_name(wl)}"
                    )
                else:
                    assert target in container_ports.values(), (
                        f"{_name(svc)} targetPort {target} not exposed by {_name(wl)}"
                    )


def test_services_select_existing_pods_and_ports(rendered: list[Obj]) -> None:
    _assert_services_select_existing_pods_and_ports(rendered)
