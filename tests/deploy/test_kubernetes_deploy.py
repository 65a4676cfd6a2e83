"""deploy/kubernetes, rendered as kustomize would (tests/deploy/kustomize.py, no kubectl): every object passes the
official Kubernetes schema (strict), and the promises the README makes hold — replicas, Pod Security
`restricted`, probes, migrations in a Job only, disruption budget, network policies, no credential in the
manifests, settings the service accepts, PostgreSQL and an external Vault in production."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from backend.cli import cli
from backend.kube_settings import KubernetesSettings
from backend.providers.kubernetes_api import KINDS
from backend.settings import Settings, load_settings, settings_from_dict
from backend.validators import scanner
from tests.deploy.kustomize import KustomizeError, config_map_hash, render, strategic_merge

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
LAYOUTS = {"base": DEPLOY / "base", "production": DEPLOY / "overlays" / "production"}
NAMESPACE, SECRET = "goldenpath", "goldenpath-credentials"
Manifest = dict[str, Any]


@cache
def rendered(layout: str) -> list[Manifest]:
    return render(LAYOUTS[layout])


@pytest.fixture(params=sorted(LAYOUTS))
def objects(request: pytest.FixtureRequest) -> list[Manifest]:
    return rendered(request.param)


def one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    assert "matchExpressions" not in (selector or {}), "matchExpressions: extend this helper"
    return all(labels.get(k) == v for k, v in ((selector or {}).get("matchLabels") or {}).items())


def server(objects: list[Manifest]) -> Manifest:
    return one(objects, "Deployment", "goldenpath")


def job(objects: list[Manifest]) -> Manifest:
    return one(objects, "Job", "goldenpath-db-upgrade")


def container(workload: Manifest) -> Manifest:
    (only,) = pod(workload)["containers"]
    return only  # type: ignore[no-any-return]


def env(workload: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container(workload).get("env") or []}


def config(objects: list[Manifest]) -> tuple[str, str]:
    """The settings file the server reads: (its path in the pod, its text from the ConfigMap it mounts)."""
    spec, main = pod(server(objects)), container(server(objects))
    path = env(server(objects))["GOLDENPATH_CONFIG"]["value"]
    mount = next(m for m in main["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config_map = one(objects, "ConfigMap", volume["configMap"]["name"])
    return path, config_map["data"][path.removeprefix(mount["mountPath"] + "/")]


def settings(objects: list[Manifest]) -> Settings:
    text = config(objects)[1]
    assert not re.search(r"\$\{[A-Za-z_]", text), "the ConfigMap needs no environment substitution"
    return settings_from_dict(yaml.safe_load(text))


# -- schema ------------------------------------------------------------------------------------------------------

def test_every_object_passes_the_strict_kubernetes_schema(objects: list[Manifest]) -> None:
    versions = {KubernetesSettings().version, settings(objects).kubernetes.version}
    for version in sorted(versions):
        for manifest in objects:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_every_object_lives_in_a_restricted_namespace(objects: list[Manifest]) -> None:
    namespace = one(objects, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] not in cluster_scoped} == {NAMESPACE}


# -- the server pods ---------------------------------------------------------------------------------------------

def test_three_replicas_spread_across_nodes(objects: list[Manifest]) -> None:
    deployment = server(objects)
    assert deployment["spec"]["replicas"] == 3
    assert selects(deployment["spec"]["selector"], pod_labels(deployment))
    spread = [c for c in pod(deployment).get("topologySpreadConstraints") or []
              if c["topologyKey"] == "kubernetes.io/hostname" and c["whenUnsatisfiable"] == "DoNotSchedule"]
    assert spread and all(selects(c["labelSelector"], pod_labels(deployment)) for c in spread)


def test_probes_ask_healthz_and_readyz_on_the_served_port(objects: list[Manifest]) -> None:
    main = container(server(objects))
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = main[probe]["httpGet"]
        assert ports.get(get["port"], get["port"]) == settings(objects).port == 7070
        paths[probe] = get["path"]
    assert paths == {"startupProbe": "/api/v1/healthz", "livenessProbe": "/api/v1/healthz",
                     "readinessProbe": "/api/v1/readyz"}


def test_the_deployment_serves_and_never_migrates(objects: list[Manifest]) -> None:
    deployment = server(objects)
    command = [*container(deployment).get("command", []), *container(deployment).get("args", [])]
    assert command[0] == "uvicorn"
    for flag in ("--factory", "--http"):  # the factory and protocol the Dockerfile serves, importable here
        module, _, name = command[command.index(flag) + 1].partition(":")
        assert getattr(importlib.import_module(module), name)
    assert command[command.index("--port") + 1] == "7070"
    assert int(command[command.index("--workers") + 1]) <= 2
    assert not {"db", "upgrade", "migrate", "alembic", "sh", "bash"} & set(command), command
    grace = int(command[command.index("--timeout-graceful-shutdown") + 1])
    pause = int(container(deployment)["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod(deployment)["terminationGracePeriodSeconds"] >= grace + pause


def test_a_job_migrates_with_the_cli_command_and_may_run_again(objects: list[Manifest]) -> None:
    migration = job(objects)
    program, *words = container(migration)["command"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert (program, words) == ("goldenpath", ["db", "upgrade"]) and scripts[program] == "backend.cli:main"
    command: click.Command | None = cli
    for word in words:  # the command exists in this version of the CLI
        assert isinstance(command, click.Group)
        command = command.get_command(click.Context(command), word)
    assert command is not None
    spec = migration["spec"]
    assert spec["backoffLimit"] >= 1 and spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
    assert pod(migration)["restartPolicy"] in {"Never", "OnFailure"}
    assert migration["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    # a PreSync hook runs before this folder's ServiceAccount exists, and the Job needs no API token
    assert pod(migration).get("serviceAccountName", "default") == "default"
    assert pod(migration)["automountServiceAccountToken"] is False
    assert container(migration)["image"] == container(server(objects))["image"]


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def restricted_violations(spec: Manifest) -> Iterator[str]:
    """Pod Security Standards, `restricted` profile (and its `baseline`), plus this image's promises: uid 10001,
    a read-only root file system with /tmp and /app/var writable."""
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            yield f"pod {host}"
    for volume in spec.get("volumes") or []:
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES:
            yield f"volume {volume['name']} has a type restricted refuses"
    yield from (f"pod {problem}" for problem in identity_violations(spec.get("securityContext") or {}))
    empty = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
    for item in spec.get("initContainers", []) + spec["containers"]:
        context, name = item.get("securityContext") or {}, item["name"]
        yield from (f"{name} {problem}" for problem in identity_violations(context))
        if context.get("allowPrivilegeEscalation") is not False or context.get("privileged"):
            yield f"{name} may escalate privileges"
        if context.get("capabilities", {}).get("drop") != ["ALL"] or context["capabilities"].get("add"):
            yield f"{name} keeps capabilities"
        if context.get("readOnlyRootFilesystem") is not True:
            yield f"{name} root file system is writable"
        if any(p.get("hostPort") for p in item.get("ports") or []):
            yield f"{name} hostPort"
        writable = {m["mountPath"] for m in item.get("volumeMounts") or [] if m["name"] in empty}
        if not {"/tmp", "/app/var"} <= writable:
            yield f"{name} has no emptyDir at /tmp and /app/var"


def identity_violations(context: Manifest) -> Iterator[str]:
    """Each level (pod and container) says it all itself: non-root, the image's uid, the runtime's seccomp."""
    if context.get("runAsNonRoot") is not True or context.get("runAsUser") != 10001:
        yield "runAsNonRoot/runAsUser"
    if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        yield "seccompProfile"


@pytest.mark.parametrize("workload", [server, job], ids=["deployment", "job"])
def test_pods_meet_pod_security_restricted(objects: list[Manifest], workload: Any) -> None:
    spec = pod(workload(objects))
    assert list(restricted_violations(spec)) == []
    for item in spec["containers"]:
        resources = item["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])


# -- around the pods ---------------------------------------------------------------------------------------------

def test_the_service_and_the_disruption_budget_select_the_server_pods_only(objects: list[Manifest]) -> None:
    servers, migrations = pod_labels(server(objects)), pod_labels(job(objects))
    service = one(objects, "Service", "goldenpath")
    assert selects({"matchLabels": service["spec"]["selector"]}, servers)
    assert not selects({"matchLabels": service["spec"]["selector"]}, migrations)
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 7070, "http")
    assert f"http://{service['metadata']['name']}.{NAMESPACE}.svc:7070" == settings(objects).public_url
    budget = one(objects, "PodDisruptionBudget")["spec"]
    assert selects(budget["selector"], servers) and not selects(budget["selector"], migrations)
    replicas = server(objects)["spec"]["replicas"]
    allowed = budget["maxUnavailable"] if "maxUnavailable" in budget else replicas - budget["minAvailable"]
    assert allowed == 1  # a drain proceeds, one pod at a time


def policies_for(objects: list[Manifest], labels: Mapping[str, str]) -> list[Manifest]:
    return [p["spec"] for p in objects if p["kind"] == "NetworkPolicy" and selects(p["spec"]["podSelector"], labels)]


def allowed_egress(objects: list[Manifest], labels: Mapping[str, str]) -> set[tuple[int, str]]:
    return {(port["port"], port.get("protocol", "TCP")) for policy in policies_for(objects, labels)
            for rule in policy.get("egress") or [] for port in rule.get("ports") or []}


def test_network_policies_deny_by_default_and_allow_only_what_is_needed(objects: list[Manifest]) -> None:
    deny = [p["spec"] for p in objects if p["kind"] == "NetworkPolicy" and p["spec"]["podSelector"] == {}]
    assert deny == [{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}]
    servers, migrations = pod_labels(server(objects)), pod_labels(job(objects))
    for policy in objects:  # none selects nothing (a label typo)
        if policy["kind"] == "NetworkPolicy":
            assert any(selects(policy["spec"]["podSelector"], labels) for labels in (servers, migrations))
    ports = {p["name"]: p["containerPort"] for p in container(server(objects))["ports"]}
    backstage = {"kubernetes.io/metadata.name": "backstage"}
    ingress = [rule for policy in policies_for(objects, servers) for rule in policy.get("ingress") or []]
    assert ingress and all(rule.get("from") for rule in ingress), "an ingress rule with no `from` admits anyone"
    assert any(ports.get(p["port"], p["port"]) == 7070 and any(selects(peer.get("namespaceSelector"), backstage)
                                                               for peer in rule["from"])
               for rule in ingress for p in rule["ports"])
    assert all("ipBlock" not in peer for rule in ingress for peer in rule["from"])
    dns = {(53, "UDP"), (53, "TCP")}
    assert allowed_egress(objects, servers) == dns | {(port, "TCP") for port in (443, 5432, 6443, 7007, 8200)}
    assert allowed_egress(objects, migrations) == dns | {(5432, "TCP")}
    assert not [rule for policy in policies_for(objects, migrations) for rule in policy.get("ingress") or []]


def test_the_service_account_may_do_what_direct_mode_does_and_no_more(objects: list[Manifest]) -> None:
    spec, config_ = pod(server(objects)), settings(objects)
    in_cluster = [c for c in config_.kubernetes.clusters.values() if c.mode == "direct" and c.in_cluster]
    assert spec["automountServiceAccountToken"] is bool(in_cluster)
    assert one(objects, "ServiceAccount", spec["serviceAccountName"])["automountServiceAccountToken"] is False
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": spec["serviceAccountName"],
                                    "namespace": NAMESPACE}]
    rules = one(objects, "ClusterRole", binding["roleRef"]["name"])["rules"]
    groups = {"CoreV1Api": "", "NetworkingV1Api": "networking.k8s.io", "RbacAuthorizationV1Api":
              "rbac.authorization.k8s.io"}
    granted = {(group, resource, verb) for rule in rules if "resourceNames" not in rule
               for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    needed = {(groups[api], re.sub("y$", "ie", kind.lower()) + "s", verb) for kind, (api, _, _) in KINDS.items()
              for verb in ("get", "create", "patch", *(("delete",) if kind == "RoleBinding" else ()))}
    assert granted == needed
    (bind,) = [rule for rule in rules if "resourceNames" in rule]
    assert (bind["verbs"], set(bind["resourceNames"])) == (
        ["bind"], {config_.kubernetes.owner_cluster_role, config_.kubernetes.auditors_cluster_role})


# -- configuration and credentials -------------------------------------------------------------------------------

def test_the_config_map_holds_settings_the_service_loads(objects: list[Manifest]) -> None:
    loaded = settings(objects)
    assert loaded.catalog.refresh_location == f"{loaded.public_url}/api/v1/catalog/entities.yaml"
    assert re.fullmatch(r"goldenpath-config-[a-z0-9]{10}", one(objects, "ConfigMap")["metadata"]["name"])


SENSITIVE = re.compile(r"TOKEN|PASSWORD|SECRET|CREDENTIAL|PRIVATE|DATABASE_URL|KEY(_|$)")
NOT_SECRET = {"GOLDENPATH_AUDIT__TRANSIT_KEY"}  # the name of a key inside Vault, which never leaves it


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")
    elif isinstance(value, str) and not path.endswith(".image"):  # an image digest is no credential
        yield path, value


def test_no_credential_is_written_in_the_manifests(objects: list[Manifest]) -> None:
    assert not [o for o in objects if o["kind"] == "Secret"], "the operator creates the Secret, not the repository"
    for manifest in objects:
        for where, text in strings(manifest):
            assert scanner().find(text) is None, f"{manifest['kind']}/{manifest['metadata']['name']}{where}"
    for workload in (server(objects), job(objects)):
        for name, variable in env(workload).items():
            if SENSITIVE.search(name) and name not in NOT_SECRET:
                assert "value" not in variable and variable["valueFrom"]["secretKeyRef"]["name"] == SECRET, name
    loaded = settings(objects)
    inline = [loaded.vault.token, loaded.github.token, loaded.auth.catalog_token, loaded.catalog.backstage_token,
              *(t.token for t in loaded.auth.static_tokens)]
    assert not any(inline), "credentials are files of the Secret, named by *_file settings"


def mounted(workload: Manifest, path: str) -> Manifest:
    """The volume a file at `path` of the pod lies on."""
    mounts = [m for m in container(workload)["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mounts, f"nothing is mounted where {path} is"
    deepest = max(mounts, key=lambda m: len(m["mountPath"]))
    volume: Manifest = next(v for v in pod(workload)["volumes"] if v["name"] == deepest["name"])
    return volume


def test_credential_files_come_from_the_secret_and_the_witness_is_shared(objects: list[Manifest]) -> None:
    deployment, loaded = server(objects), settings(objects)
    files = [loaded.vault.token_file, loaded.github.app_private_key_file, loaded.github.token_file,
             loaded.auth.catalog_token_file, loaded.catalog.backstage_token_file, loaded.audit.key_file,
             *(c.token_file or c.kubeconfig for c in loaded.kubernetes.clusters.values())]
    for path in filter(None, files):
        secret = mounted(deployment, path)["secret"]
        assert secret["secretName"] == SECRET
        assert secret["defaultMode"] & 0o037 == 0, "the audit key check refuses group write and any other access"
    claim = mounted(deployment, loaded.audit.witness_file)["persistentVolumeClaim"]["claimName"]
    assert one(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


# -- production --------------------------------------------------------------------------------------------------

def from_secret(variable: Manifest) -> tuple[str, str]:
    ref = variable["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def test_production_uses_postgresql_and_an_external_vault(tmp_path: Path) -> None:
    objects = rendered("production")
    deployment, migration = env(server(objects)), env(job(objects))
    # the Job migrates the database the Deployment serves from: the same Secret key
    assert from_secret(deployment["GOLDENPATH_DATABASE_URL"]) == from_secret(migration["GOLDENPATH_DATABASE_URL"]) \
        == (SECRET, "database-url")
    stand_in = "postgresql+psycopg://goldenpath@postgres.example:5432/goldenpath"
    path, text = config(objects)
    (tmp_path / "goldenpath.yaml").write_text(text, encoding="utf-8")
    variables = {name: v.get("value", stand_in) for name, v in deployment.items()} | {"GOLDENPATH_CONFIG": path}
    effective = load_settings(str(tmp_path / "goldenpath.yaml"), env=variables)  # names it does not know fail
    assert effective.database_url == stand_in
    vault = re.fullmatch(r"https://([^/:]+)(:\d+)?/?", effective.vault.addr or "")
    assert vault and not re.search(r"\.svc(\.|$)|cluster\.local$|^localhost$", vault.group(1))
    assert effective.audit.transit_mount and effective.audit.transit_key
    assert re.fullmatch(r"[^@:]+@sha256:[0-9a-f]{64}", container(server(objects))["image"])


def test_the_base_alone_names_no_database_and_no_vault() -> None:
    base = rendered("base")
    assert not {"GOLDENPATH_DATABASE_URL", "VAULT_ADDR"} & set(env(server(base)))  # overlays choose them


# -- the renderer ------------------------------------------------------------------------------------------------

def test_the_renderer_hashes_and_merges_as_kustomize_does(tmp_path: Path) -> None:
    # kustomize's own vectors (api/hasher/hasher_test.go)
    assert config_map_hash({"one": ""}) == "9g67k2htb6"
    assert config_map_hash({"two": 2, "one": "", "three": 3}) == "7757f9kkct"
    original = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "args": ["x"]}
    patch = {"env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}], "args": ["y"]}
    assert strategic_merge(original, patch) == {  # the order kubectl kustomize (v5.5) prints
        "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}, {"name": "A", "value": "1"}],
        "args": ["y"]}
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\n", encoding="utf-8")
    with pytest.raises(KustomizeError, match="commonLabels"):
        render(tmp_path)


KUBECTL = os.environ.get("GOLDENPATH_TEST_KUBECTL")


@pytest.mark.skipif(not KUBECTL, reason="set GOLDENPATH_TEST_KUBECTL to a kubectl to compare the renderer with "
                    "`kubectl kustomize` (the project does not install kubectl)")
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_renderer_agrees_with_kubectl_kustomize(layout: str) -> None:
    out = subprocess.run([str(KUBECTL), "kustomize", str(LAYOUTS[layout])], capture_output=True, text=True,
                         check=True, timeout=60).stdout

    def by_id(objects: list[Manifest]) -> dict[tuple[str, str], Manifest]:
        return {(o["kind"], o["metadata"]["name"]): o for o in objects}

    assert by_id(rendered(layout)) == by_id([o for o in yaml.safe_load_all(out) if o])
