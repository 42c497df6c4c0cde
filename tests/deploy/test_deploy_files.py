"""The deployment files (docker/), validated without a container engine: hadolint on every
Dockerfile, the compose file against the Compose specification, every Kubernetes manifest against
the API schemas (strict), and the wiring between them checked by hand: health checks on the routes
the service really has, the dashboard's queries on metrics the service really exports."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is not installed: pip install -e '.[dev]' (CI installs it; this test never skips)"
    return path


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_there_are_three_images() -> None:
    assert [p.name for p in DOCKERFILES] == ["serve-cpu.Dockerfile", "serve-gpu.Dockerfile", "train.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    r = subprocess.run([_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_pinned_non_root_and_install_dependencies_before_the_code(dockerfile: Path) -> None:
    lines = [ln.strip() for ln in dockerfile.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    base = next(ln for ln in lines if ln.startswith("FROM ")).split()[1]
    if base.startswith("${"):  # a build argument: its default must be pinned
        arg = base.strip("${}")
        base = next(ln for ln in lines if ln.startswith(f"ARG {arg}=")).split("=", 1)[1]
    assert ":" in base and not base.endswith(":latest"), base
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in {"root", "0"}
    code = re.compile(r"COPY (serving|recsys|common|bundle|vision|pipelines) ")
    first_code = next(i for i, ln in enumerate(lines) if code.match(ln))
    install = next(i for i, ln in enumerate(lines) if "pip install" in ln and "-r /tmp/" in ln)
    assert install < first_code  # a code change does not reinstall the dependencies
    for pkg in ("common", "bundle", "recsys", "vision", "serving", "pipelines"):  # every package the code imports
        assert f"COPY {pkg} {pkg}" in lines, pkg
    req = re.search(r"docker/(requirements-[\w-]+\.txt)", dockerfile.read_text()).group(1)
    assert "--require-hashes" in dockerfile.read_text()  # a replaced file on the index is refused
    entries = (DOCKER / req).read_text().replace("\\\n", " ").splitlines()
    pins = [ln.split()[0] for ln in entries if ln and not ln.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.\-+]+ +--hash=sha256:[0-9a-f]{64}", ln.strip())
                        for ln in entries if ln and not ln.startswith("#")), req
    names = {p.split("==")[0] for p in pins}
    if dockerfile.name.startswith("serve"):
        assert not names & {"torch", "torchvision"}  # serving images carry no torch
        health = next(ln for ln in lines if ln.startswith("HEALTHCHECK"))
        assert "/healthz" in dockerfile.read_text().split(health.split()[0], 1)[1].split("\nCMD ")[0]
    if "gpu" in dockerfile.name:
        assert {"onnxruntime-gpu", "faiss-gpu-cu12"} <= names and not names & {"onnxruntime", "faiss-cpu"}
        assert base.startswith("nvidia/cuda:")


def test_the_compose_file_matches_the_compose_specification_and_its_wiring() -> None:
    r = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                        str(DOCKER / "compose.yaml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"api", "nightly", "prometheus", "grafana"} <= set(services)
    for s in services.values():
        if "build" in s:
            assert (DOCKER / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
        for vol in s.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (DOCKER / src).exists(), src
    scrape = yaml.safe_load((DOCKER / "prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics" and scrape["static_configs"][0]["targets"] == ["api:8000"]
    # hardening (docs/security.md): loopback-only ports, no anonymous Grafana, /metrics scraped with the read token
    for name, s in services.items():
        assert all(str(p).startswith("127.0.0.1:") for p in s.get("ports", [])), name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and "GF_SECURITY_ADMIN_PASSWORD" in grafana
    secret = scrape["authorization"]["credentials_file"].rsplit("/", 1)[1]
    assert secret in services["prometheus"]["secrets"] and secret in compose["secrets"]


def test_every_kubernetes_manifest_passes_the_api_schema_strictly() -> None:
    files = sorted((DOCKER / "k8s").glob("*.yaml"))
    r = subprocess.run([_tool("kubernetes-validate"), "--strict", "--quiet", *map(str, files)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    kinds = {d["kind"]: d for f in files for d in _docs(f)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "CronJob", "PersistentVolumeClaim"} <= set(kinds)
    api = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert api[probe]["timeoutSeconds"] <= 2, probe
    pods = [kinds["Deployment"]["spec"]["template"]["spec"],
            kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    for pod in pods:  # hardening (docs/security.md)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, c["name"]
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    assert kinds["CronJob"]["spec"]["concurrencyPolicy"] == "Forbid"
    kust = yaml.safe_load((DOCKER / "kustomization.yaml").read_text())
    assert sorted(DOCKER / f for f in kust["resources"]) == files
    for gen in kust["configMapGenerator"]:
        for f in gen["files"]:
            assert (DOCKER / f.split("=")[-1]).is_file()


def test_the_probes_and_health_checks_name_routes_the_service_has(tiny_artifacts: Path) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServingSettings

    read = "probe-read-token-0123"  # /metrics needs the read role (Prometheus: docker/prometheus/prometheus.yml)
    with TestClient(create_app(ServingSettings(artifacts_dir=tiny_artifacts, read_token=read))) as c:
        for route in ("/healthz", "/readyz", "/metrics"):
            assert c.get(route, headers={"Authorization": f"Bearer {read}"}).status_code == 200, route


def test_the_nightly_config_the_images_mount_loads() -> None:
    from pipelines.nightly import NightlyConfig

    cfg = NightlyConfig.from_yaml(DOCKER / "config/nightly.yaml")
    assert cfg.reload_url == "http://api:8000" and cfg.vision.model == "resnet_fm_18"


def test_the_dashboard_queries_only_metrics_the_service_exports() -> None:
    from prometheus_client import REGISTRY

    import serving.metrics  # noqa: F401  (registers the service's metrics)

    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",), "info": ("_info",)}
    exported = {m.name + suf for m in REGISTRY.collect() if m.name.startswith("vitrine_")
                for suf in suffixes.get(m.type, ("",))}
    dash = json.loads((DOCKER / "grafana/dashboards/vitrine.json").read_text())
    queried = {n for p in dash["panels"] for t in p["targets"] for n in re.findall(r"vitrine_\w+", t["expr"])}
    assert len(queried) >= 8 and queried <= exported, queried - exported
