"""The quota service in the Kubernetes base: two replicas that register their pod IP
in the same etcd control uses, probes on the metrics port, a PDB."""

from __future__ import annotations

from control.ratelimit.cli import build_parser
from tests.deploy.test_k8s_manifests import Obj, _flags, _one, _pod_spec, rendered

__all__ = ["rendered"]  # the module-scoped fixture, shared with the main manifest tests


def test_ratelimit_deployment_contract(rendered: list[Obj]) -> None:
    dep = _one(rendered, "Deployment", "strata-ratelimit")
    assert dep["spec"]["replicas"] == 2
    (container,) = _pod_spec(dep)["containers"]
    assert container["command"] == ["strata", "ratelimit"]
    flags = _flags(container["args"])
    control = _one(rendered, "Deployment", "strata-control")
    control_flags = _flags(_pod_spec(control)["containers"][0]["args"])
    # the same etcd and key root as control, or control never sees the replicas
    assert flags["etcd-endpoints"] == control_flags["etcd-endpoints"]
    assert "key-root" not in flags and "key-root" not in control_flags
    # tier1 dials the advertised address: the pod IP, substituted from the env
    env = {e["name"]: e for e in container["env"]}
    assert flags["advertise"] == "$(POD_IP):8092"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert flags["listen"] == "0.0.0.0:8092"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8092, "metrics": int(flags["metrics-port"])}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # every flag the manifest passes is one the CLI knows
    args = build_parser().parse_args(container["args"])
    assert args.listen == ("0.0.0.0", 8092) and not args.no_store
    pdb = _one(rendered, "PodDisruptionBudget", "strata-ratelimit")
    assert pdb["spec"]["minAvailable"] == 1
