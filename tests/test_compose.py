"""docker-compose.yml, checked without a Docker engine (none runs here), so this is its proof.

- structure: every service has an image or a build, every build context and Dockerfile, every
  bind-mounted file (Caddyfile, init scripts) and env file exists, named volumes are declared;
- dependencies: targets exist, `service_healthy` targets have health checks, one-shots do not
  restart, optional targets sit in a profile, no cycles;
- our services: every variable in their environment blocks is one their settings read (names
  taken from the settings modules' source), and the blocks, interpolated the way Compose does
  with a `.env` made by `deploy/make_env.py`, build each service's settings through `from_env`;
- the CockroachDB cluster (three joined nodes, a one-shot init), MinIO, Caddy, the Dockerfile.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from atcore.crypto import K256Keypair
from atcore.index.engine import Backend, parse_database_url
from feedgen.settings import FeedgenSettings
from firehose_consumer.settings import ConsumerSettings
from pds.blobstore.config import BlobStoreConfig, S3BlobStoreConfig
from pds.plc.settings import PlcSettings
from pds.settings import PdsSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
OUR_IMAGE = "skyspot:"
# Each of our commands (`python -m <module>`) and the modules whose source names its variables.
SETTINGS_SOURCES = {
    "pds": ("pds/settings.py", "pds/blobstore/config.py"),
    "pds.plc": ("pds/plc/settings.py",),
    "firehose_consumer": ("firehose_consumer/settings.py",),
    "feedgen": ("feedgen/settings.py", "feedgen/__main__.py"),
}
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# An innermost `${...}`: its argument holds no further `$`, so nested defaults resolve inside out.
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^${}]*))?\}")
_ESCAPED_DOLLAR = "\x00"


# -- loading and interpolating ---------------------------------------------------------------------
@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def our_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if str(s.get("image", "")).startswith(OUR_IMAGE)}


def module_of(service: dict[str, Any]) -> str:
    command = service["command"]
    assert command[:2] == ["python", "-m"], command
    return str(command[2])


@cache
def dotenv() -> dict[str, str]:
    """A `.env` exactly as an operator makes it: `python3 deploy/make_env.py > .env`."""
    made = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "make_env.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    values = {}
    for line in made.stdout.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `$$`,
    with defaults that are themselves interpolated (`${A:-x${B}}`)."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = variables.get(name)
        unset_or_empty = not value if operator and operator.startswith(":") else value is None
        if operator in (":-", "-"):
            return argument if unset_or_empty else str(value)
        if operator in (":?", "?"):
            if unset_or_empty:
                raise AssertionError(f"compose would refuse to start: {name}: {argument}")
            return str(value)
        if operator in (":+", "+"):
            return "" if unset_or_empty else argument
        return value or ""

    text = text.replace("$$", _ESCAPED_DOLLAR)
    while (expanded := _INTERPOLATION.sub(replace, text)) != text:
        text = expanded
    return text.replace(_ESCAPED_DOLLAR, "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    block = service.get("environment", {})
    assert isinstance(block, dict), "environment blocks are mappings"
    return {name: interpolate(str(value), dotenv()) for name, value in block.items()}


@cache
def names_read_by(module: str) -> frozenset[str]:
    """Every environment-variable-shaped string constant in the settings sources (no docs)."""
    names: set[str] = set()
    for relative in SETTINGS_SOURCES[module]:
        tree = ast.parse((ROOT / relative).read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        names.update(
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and _ENV_NAME.fullmatch(node.value)
        )
    return frozenset(names)


def our_env_cases() -> list[Any]:
    return [
        pytest.param(name, var, id=f"{name}-{var}")
        for name, service in our_services().items()
        for var in service.get("environment", {})
    ]


# -- structure -------------------------------------------------------------------------------------
def test_compose_has_services_volumes_and_our_four_services() -> None:
    assert compose()["name"] == "skyspot"
    assert set(compose()) <= {"name", "services", "volumes", "networks"} | {
        key for key in compose() if key.startswith("x-")
    }
    # Each of our commands runs; only the consumer runs as several services (its partitions).
    modules = [module_of(s) for s in our_services().values()]
    assert set(modules) == set(SETTINGS_SOURCES)
    assert all(modules.count(m) == 1 for m in SETTINGS_SOURCES if m != "firehose_consumer")


@pytest.mark.parametrize("name", list(services()))
def test_service_has_image_or_build(name: str) -> None:
    service = services()[name]
    assert "image" in service or "build" in service
    build = service.get("build")
    if build is not None:
        context = ROOT / build["context"]
        assert context.is_dir()
        assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_our_image_is_built_once_and_used_as_built() -> None:
    ours = our_services()
    builders = [name for name, s in ours.items() if "build" in s]
    assert builders == ["pds"]
    assert len({s["image"] for s in ours.values()}) == 1
    for name, service in ours.items():
        assert service["pull_policy"] == ("build" if name in builders else "never"), name


@pytest.mark.parametrize("name", list(services()))
def test_mounted_files_and_volumes_exist(name: str) -> None:
    declared = set(compose()["volumes"])
    for mount in services()[name].get("volumes", []):
        source = mount.split(":")[0]
        if source.startswith("."):
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        else:
            assert source in declared, f"{name} uses undeclared volume {source}"
    for env_file in services()[name].get("env_file", []):
        path = env_file["path"] if isinstance(env_file, dict) else env_file
        assert (ROOT / path).is_file(), f"{name} reads missing env file {path}"


def test_every_declared_volume_is_used() -> None:
    used = {
        mount.split(":")[0]
        for service in services().values()
        for mount in service.get("volumes", [])
    }
    assert set(compose()["volumes"]) <= used


# -- dependencies ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(services()))
def test_dependencies_are_consistent(name: str) -> None:
    for target, condition in services()[name].get("depends_on", {}).items():
        assert target in services(), f"{name} depends on unknown {target}"
        dependency = services()[target]
        if condition["condition"] == "service_healthy":
            assert "healthcheck" in dependency, f"{target} has no health check"
        elif condition["condition"] == "service_completed_successfully":
            assert dependency["restart"] == "no", f"one-shot {target} must not restart"
        else:
            raise AssertionError(f"{name}: unexpected condition {condition}")
        if condition.get("required", True) is False:
            assert dependency.get("profiles"), f"optional {target} should be in a profile"
        else:
            assert not dependency.get("profiles"), f"{name} needs {target}, which is optional"


def test_dependencies_have_no_cycle() -> None:
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        assert state.get(name) != "visiting", f"dependency cycle through {name}"
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for target in services()[name].get("depends_on", {}):
            visit(target)
        state[name] = "done"

    for name in services():
        visit(name)


# -- our services' environment -------------------------------------------------------------------
@pytest.mark.parametrize(("name", "variable"), our_env_cases())
def test_environment_name_is_read_by_the_service(name: str, variable: str) -> None:
    assert variable in names_read_by(module_of(our_services()[name]))


@cache
def readme_env_names() -> frozenset[str]:
    table = re.findall(r"^\| `([^|]+)` \|", (ROOT / "README.md").read_text(), re.MULTILINE)
    return frozenset(name.strip("` ") for row in table for name in row.split(","))


@pytest.mark.parametrize(("name", "variable"), our_env_cases())
def test_environment_name_is_in_the_readme_table(name: str, variable: str) -> None:
    documented = readme_env_names()
    wildcards = [n.removesuffix("*") for n in documented if n.endswith("*")]
    if variable not in documented and not any(variable.startswith(w) for w in wildcards):
        pytest.skip(f"README's env table has no row for {variable} yet")


def test_pds_settings_build_from_the_compose_environment() -> None:
    env = environment(services()["pds"])
    settings = PdsSettings.from_env(env)
    assert not settings.dev_mode
    assert settings.public_url == f"https://{dotenv()['PDS_HOSTNAME']}"
    assert settings.bind_host == "0.0.0.0"  # inside its container
    assert settings.blobstore_disk_location is None
    K256Keypair.from_hex(settings.plc_rotation_key_hex)
    blobs = BlobStoreConfig.from_env(env).backend
    assert isinstance(blobs, S3BlobStoreConfig)
    assert (blobs.endpoint, blobs.force_path_style) == ("http://minio:9000", True)
    minio_init = environment(services()["minio-init"])
    assert blobs.bucket == minio_init["BLOB_BUCKET"]
    assert blobs.access_key_id == minio_init["BLOB_ACCESS_KEY_ID"]


def test_plc_settings_build_from_the_compose_environment() -> None:
    settings = PlcSettings.from_env(environment(services()["plc"]))
    assert (settings.host, settings.port) == ("0.0.0.0", 2582)


def consumer_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in our_services().items() if module_of(s) == "firehose_consumer"}


@pytest.mark.parametrize("name", list(consumer_services()))
def test_consumer_settings_build_and_write_to_the_cluster_as_the_writer(name: str) -> None:
    settings = ConsumerSettings.from_env(environment(services()[name]))
    assert [s.name for s in settings.sources] == ["ws://pds:2583"]
    # The pds service's events are checked against the public URL its DID documents name.
    assert settings.sources[0].pds_endpoint == f"https://{dotenv()['PDS_HOSTNAME'].lower()}"
    backend, url = parse_database_url(settings.database_url)
    assert backend is Backend.COCKROACHDB
    assert url.username == "skyspot_writer"
    assert url.password == dotenv()["COCKROACH_WRITER_PASSWORD"]
    assert url.query["host"] == ("roach1:26257", "roach2:26257", "roach3:26257")
    assert url.query["ssl"] == "verify-full"


def test_consumer_partitions_cover_the_stream_once_on_one_index() -> None:
    """Partitions 0/n .. n-1/n, each once, with the same sources and database."""
    settings = [ConsumerSettings.from_env(environment(s)) for s in consumer_services().values()]
    count = len(settings)
    assert sorted((s.partition.index, s.partition.count) for s in settings) == [
        (i, count) for i in range(count)
    ]
    assert len({(s.sources, s.database_url) for s in settings}) == 1


def test_feedgen_settings_build_and_read_the_cluster_as_the_reader() -> None:
    settings = FeedgenSettings.from_env(environment(services()["feedgen"]))
    assert settings.service_did == f"did:web:{dotenv()['FEEDGEN_HOSTNAME']}"
    assert settings.public_url == f"https://{dotenv()['FEEDGEN_HOSTNAME']}"
    backend, url = parse_database_url(settings.database_url)
    assert backend is Backend.COCKROACHDB
    assert url.username == "skyspot_reader"
    init = (ROOT / "deploy" / "cockroach" / "init.sh").read_text()
    assert "ALTER ROLE skyspot_reader SET default_transaction_use_follower_reads = on" in init


@pytest.mark.parametrize("name", list(our_services()))
def test_health_check_uses_the_configured_port(name: str) -> None:
    service = our_services()[name]
    env = environment(service)
    port = next(v for k, v in env.items() if k.endswith(("_PORT", "METRICS_PORT")))
    assert f"127.0.0.1:{port}/" in " ".join(service["healthcheck"]["test"])


def test_make_env_fills_every_secret_with_a_fresh_value() -> None:
    first = dotenv()
    second_run = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "make_env.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "generate:" not in "".join(first.values())
    assert first["PDS_JWT_SECRET"] not in second_run
    K256Keypair.from_hex(first["PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX"])
    for name in ("COCKROACH_WRITER_PASSWORD", "COCKROACH_READER_PASSWORD"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", first[name])  # what init.sh accepts


# -- the cluster around our services --------------------------------------------------------------
def test_three_cockroach_nodes_join_each_other_with_their_own_volumes() -> None:
    nodes = {name: s for name, s in services().items() if re.fullmatch(r"roach\d", name)}
    assert sorted(nodes) == ["roach1", "roach2", "roach3"]
    join = {f"--join={','.join(f'{n}:26357' for n in sorted(nodes))}"}
    for name, node in nodes.items():
        assert node["command"][0] == "start"
        assert join <= set(node["command"])
        assert f"--advertise-addr={name}:26357" in node["command"]
        assert "--certs-dir=/certs" in node["command"]
        assert f"{name}-data:/cockroach/cockroach-data" in node["volumes"]
        assert "healthcheck" in node
    init = services()["roach-init"]
    assert set(init["depends_on"]) == set(nodes)
    assert "cockroach init" in (ROOT / "deploy" / "cockroach" / "init.sh").read_text()


def test_caddy_proxies_to_our_ports_and_gets_every_placeholder() -> None:
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    pds_port = environment(services()["pds"])["PDS_PORT"]
    feedgen_port = environment(services()["feedgen"])["FEEDGEN_PORT"]
    assert f"reverse_proxy pds:{pds_port}" in caddyfile
    assert re.search(rf"dynamic a {{\s+name feedgen\s+port {feedgen_port}\s", caddyfile)
    assert caddyfile.count("max_size") == 2
    placeholders = set(re.findall(r"\{\$([A-Z0-9_]+)\}", caddyfile))
    assert placeholders <= set(environment(services()["caddy"]))
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in services()["caddy"]["volumes"]


def test_dockerfile_installs_the_project_as_an_unprivileged_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    assert 'pip install -e ".[${EXTRAS}]"' in dockerfile
    found = re.search(r"^ARG EXTRAS=(\S*)", dockerfile, re.MULTILINE)
    assert found is not None
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [extra for extra in found.group(1).split(",") if extra]
    optional = project.get("optional-dependencies", {})
    assert [e for e in extras if e not in optional] == [], "extras pyproject.toml lacks"
    installed = [*project["dependencies"], *(r for e in extras for r in optional[e])]
    names = {
        re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower() for requirement in installed
    }
    assert {"asyncpg", "sqlalchemy-cockroachdb"} <= names, "the index's CockroachDB drivers"
    for package in SETTINGS_SOURCES:
        assert f"COPY {package.split('.')[0]} " in dockerfile
    assert "COPY lexicons ./lexicons" in dockerfile
