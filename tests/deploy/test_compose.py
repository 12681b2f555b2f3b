"""The Docker Compose deployment, checked without a Docker engine.

docker-compose.yaml is interpolated the way `docker compose` does it (with .env.example's values) and
validated against the Compose Specification's JSON schema; each service's command is parsed by the CLI
it names (the pinned Airflow's, the Celery provider's, csops'); connections and CS_* variables are
compared with what the code reads; the Dockerfile with the pins. Nothing here builds or starts a
container: that is left to a machine with Docker (docs/deployment.md).
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jsonschema
import psycopg
import pytest
import yaml

from csops import settings
from csops.local_stack import dbt_environment
from tests.conftest import REPO_ROOT, VENV_BIN, create_database, free_port

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer")
# The Compose Specification's JSON schema, as check-jsonschema vendors it (with its SHA-256), from PyPI.
SCHEMA_WHEEL = "check-jsonschema==0.39.0"
SCHEMA_MEMBER = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
SCHEMA_CHECKSUM_MEMBER = "check_jsonschema/builtin_schemas/vendor/sha256/compose-spec.sha256"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET")


# --- docker compose's view of the file --------------------------------------------------------------

class MissingVariable(Exception):
    pass


# $$ | ${NAME} | ${NAME<op>argument} (one level of nested braces in the argument) | $NAME
VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}"
                      r"|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, environment: dict[str, str], seen: list[tuple[str, str | None]]) -> str:
    """Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error},
    ${NAME?error}, ${NAME:+alternative}, ${NAME+alternative}. Records (name, operator) in `seen`."""

    def substitute(match: re.Match) -> str:
        escaped, braced, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = braced or bare
        seen.append((name, operator))
        value = environment.get(name)
        present = value is not None and (value != "" or ":" not in (operator or ""))
        if operator is None:
            return value or ""
        argument = interpolate(argument, environment, seen)
        if operator.endswith("-"):
            return value if present else argument
        if operator.endswith("+"):
            return argument if present else ""
        if not present:  # ? and :?
            raise MissingVariable(f"{name}: {argument}")
        return value

    return VARIABLE.sub(substitute, text)


def interpolate_all(node, environment: dict[str, str], seen: list):
    if isinstance(node, str):
        return interpolate(node, environment, seen)
    if isinstance(node, dict):
        return {key: interpolate_all(value, environment, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_all(value, environment, seen) for value in node]
    return node


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolation_environment() -> dict[str, str]:
    """.env.example, with values for what it leaves for the operator to generate (the Fernet key)."""
    return {name: value or f"test-{name.lower()}" for name, value in env_example().items()}


def load_compose(environment: dict[str, str] | None = None, seen: list | None = None) -> dict:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())  # anchors and << merge keys resolved here
    return interpolate_all(raw, interpolation_environment() if environment is None else environment,
                           [] if seen is None else seen)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def environment_of(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {key: str(value) for key, value in environment.items()}


def airflow_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items()
            if "AIRFLOW__CORE__EXECUTOR" in environment_of(service)}


# --- the Dockerfile ---------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    logical, lines = [], DOCKERFILE.read_text().splitlines()
    current = ""
    for line in lines:
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        instruction, _, arguments = current.strip().partition(" ")
        logical.append((instruction.upper(), arguments.strip()))
        current = ""
    return logical


def dockerfile_env() -> dict[str, str]:
    values = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            values.update(item.split("=", 1) for item in shlex.split(arguments))
    return values


def pinned_airflow_version() -> str:
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"apache-airflow(\[[^\]]*\])?==([0-9][^\s;#]*)\s*", line)
        if match:
            return match.group(2)
    raise AssertionError("requirements.txt pins no apache-airflow version")


# --- wheels from PyPI --------------------------------------------------------------------------------

def download_wheel(requirement: str, folder: Path) -> Path:
    """One wheel, no dependencies, with pip (PyPI is all a fresh machine needs)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "--disable-pip-version-check", "--quiet", "--dest", str(folder), requirement],
                   check=True, timeout=300)
    return next(folder.glob("*.whl"))


@pytest.fixture(scope="module")
def compose_schema(tmp_path_factory) -> dict:
    import hashlib

    with zipfile.ZipFile(download_wheel(SCHEMA_WHEEL, tmp_path_factory.mktemp("schema"))) as wheel:
        schema = wheel.read(SCHEMA_MEMBER)
        checksum = wheel.read(SCHEMA_CHECKSUM_MEMBER).decode().split()[0]
    assert hashlib.sha256(schema).hexdigest() == checksum, "the vendored compose schema does not match its checksum"
    return json.loads(schema)


@pytest.fixture(scope="module")
def celery_provider(tmp_path_factory) -> Path:
    """The Celery provider the Dockerfile installs, unpacked: its CLI defines `airflow celery ...`."""
    arguments = dict(re.findall(r"(\w+)=(\S+)", " ".join(
        arguments for instruction, arguments in dockerfile_instructions() if instruction == "ARG")))
    pinned = arguments["CELERY_PROVIDER_VERSION"]
    folder = tmp_path_factory.mktemp("celery-provider")
    with zipfile.ZipFile(download_wheel(f"apache-airflow-providers-celery=={pinned}", folder)) as wheel:
        wheel.extractall(folder / "unpacked")
    return folder / "unpacked" / "airflow" / "providers"


# --- 1. the Compose Specification -------------------------------------------------------------------

def schema_errors(schema: dict, document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification(compose, compose_schema):
    assert schema_errors(compose_schema, compose) == []


BREAKAGES = {
    "misspelled key": lambda c: c["services"]["airflow-scheduler"].update(comand="scheduler"),
    "ports as a mapping": lambda c: c["services"]["airflow-apiserver"].update(ports={"8080": 8080}),
    "unknown depends_on condition": lambda c: c["services"]["airflow-worker"]["depends_on"]["redis"].update(
        condition="service_ready"),
    "environment as a string": lambda c: c["services"]["warehouse"].update(environment="POSTGRES_DB=warehouse"),
    "misspelled top-level key": lambda c: c.update(volume={"logs": {}}),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_the_schema_rejects_a_broken_compose_file(compose, compose_schema, breakage):
    broken = copy.deepcopy(compose)
    BREAKAGES[breakage](broken)
    assert schema_errors(compose_schema, broken)


def test_every_variable_is_in_env_example_and_no_secret_has_a_default():
    seen: list[tuple[str, str | None]] = []
    load_compose(seen=seen)
    example = env_example()
    assert {name for name, _ in seen} == set(example), "docker-compose.yaml and .env.example name different variables"
    secrets = {name for name, _ in seen if SECRET_NAME.search(name)}
    assert secrets >= {"AIRFLOW_DB_PASSWORD", "WAREHOUSE_PASSWORD", "SOURCES_PASSWORD", "AIRFLOW_FERNET_KEY"}
    for name, operator in seen:
        if name in secrets:
            assert operator == ":?", f"${{{name}}} must be required (:?), never defaulted"
    for name in secrets:  # only placeholders are committed
        assert example[name] == "" or example[name].startswith("change-me"), name
    with pytest.raises(MissingVariable, match="AIRFLOW_FERNET_KEY"):
        load_compose(environment=env_example())  # as copied: the Fernet key must be generated first
    with pytest.raises(MissingVariable):
        load_compose(environment={})  # no .env: refused, not started with guesses


def test_services_follow_airflow_3s_layout(compose):
    services = compose["services"]
    commands = {name: services[name].get("command") for name in services}
    assert commands["airflow-apiserver"] == "api-server"
    assert "8080" in services["airflow-apiserver"]["ports"][0].rsplit(":", 1)[-1]
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-worker"] == "celery worker"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["flower"] == "celery flower" and services["flower"]["profiles"] == ["flower"]
    assert {"postgres", "redis", "airflow-init", "warehouse", "sources", "nexpro-sandbox"} <= set(services)
    for name in AIRFLOW_SERVICES + ("flower",):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    image = services["nexpro-sandbox"]["image"]
    assert {service["image"] for service in airflow_services(compose).values()} == {image}

    common = environment_of(services["airflow-scheduler"])
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(common["AIRFLOW__CELERY__BROKER_URL"]).hostname in services
    execution_api = urlsplit(common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (execution_api.hostname, execution_api.port) == ("airflow-apiserver", 8080)
    metadata = urlsplit(common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    database = environment_of(services[metadata.hostname])
    assert (metadata.username, metadata.password, metadata.path.lstrip("/")) == (
        database["POSTGRES_USER"], database["POSTGRES_PASSWORD"], database["POSTGRES_DB"])
    # Every component signs or checks with the same secrets.
    for name, service in airflow_services(compose).items():
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            assert environment_of(service)[key] == common[key], (name, key)
    # The admin airflow-init writes a password for is the SimpleAuthManager's user.
    init = environment_of(services["airflow-init"])
    assert init["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{init['ADMIN_USERNAME']}:admin"


# --- 2. every command exists ------------------------------------------------------------------------

def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, split on newlines, ;, &&, || and |."""
    commands = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in {";", "&&", "||", "|", "&"}:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [command for command in commands if command]


def airflow_invocations(service: dict) -> list[list[str]]:
    """The `airflow ...` argument lists a service runs: its command (the image's entry point runs
    `airflow <command>`), and the airflow lines of its shell script and health check."""
    invocations = []
    command = service.get("command")
    if "entrypoint" not in service and command:
        invocations.append(shlex.split(command) if isinstance(command, str) else list(command))
    scripts = []
    if service.get("entrypoint") in ("/bin/bash", ["/bin/bash"]) and command[0] == "-c":
        scripts.append(command[1])
    test = service.get("healthcheck", {}).get("test", [])
    if test[:1] == ["CMD-SHELL"]:
        scripts.append(test[1])
    elif test[:1] == ["CMD"]:
        scripts.append(shlex.join(test[1:]))
    for script in scripts:
        for words in shell_commands(script):
            while words and words[0] in ("/entrypoint", "exec"):
                words = words[1:]
            if words[:1] == ["airflow"]:
                invocations.append(words[1:])
    return invocations


AIRFLOW_CLI_CHECK = r"""
import contextlib, io, json, sys
import airflow.providers
airflow.providers.__path__.append(sys.argv[2])  # the unpacked Celery provider
from airflow.cli.cli_parser import get_parser as airflow_parser
from airflow.providers.celery.cli.definition import get_parser as celery_parser

parsers = {"airflow": airflow_parser(), "celery": celery_parser()}
failures = {}
for arguments in json.loads(sys.argv[1]):
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            parsers["celery" if arguments[:1] == ["celery"] else "airflow"].parse_args(arguments)
    except SystemExit:
        failures[" ".join(arguments)] = output.getvalue()[-400:]
print(json.dumps(failures))
"""


def test_airflow_commands_exist_in_the_pinned_airflow(compose, celery_provider):
    assert version("apache-airflow") == pinned_airflow_version(), "the tests must run the image's Airflow"
    invocations = [arguments for service in airflow_services(compose).values()
                   for arguments in airflow_invocations(service)]
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker", "celery flower",
            "db migrate"} <= {" ".join(arguments[:2] if arguments[0] in ("celery", "db") else arguments[:1])
                              for arguments in invocations}
    result = subprocess.run([sys.executable, "-c", AIRFLOW_CLI_CHECK, json.dumps(invocations), str(celery_provider)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_the_airflow_cli_check_catches_a_wrong_command(celery_provider):
    wrong = [["webserver"], ["celery", "workers"], ["jobs", "check", "--job-type", "DagProcessor"]]
    result = subprocess.run([sys.executable, "-c", AIRFLOW_CLI_CHECK, json.dumps(wrong), str(celery_provider)],
                            capture_output=True, text=True, timeout=120)
    assert set(json.loads(result.stdout.strip().splitlines()[-1])) == {" ".join(arguments) for arguments in wrong}


CSOPS_CLI_CHECK = r"""
import json, sys
import csops.cli as cli

chosen = {}
for name in [name for name in dir(cli) if name.startswith("command_")]:
    setattr(cli, name, lambda arguments, name=name: chosen.update(handler=name, arguments=vars(arguments)))
cli.main(json.loads(sys.argv[1]))
print(json.dumps(chosen, default=str))
"""


def parse_csops(arguments: list[str]) -> subprocess.CompletedProcess:
    """csops' own argument parser on `arguments`, every command handler replaced by a recorder."""
    return subprocess.run([sys.executable, "-c", CSOPS_CLI_CHECK, json.dumps(arguments)],
                          capture_output=True, text=True, timeout=60)


def test_the_sandbox_service_runs_an_existing_csops_command(compose):
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["csops"] == "csops.cli:main"  # the console script `pip install .` puts on PATH
    sandbox = compose["services"]["nexpro-sandbox"]
    assert sandbox["entrypoint"] == ["csops"]  # not the image's entry point, which would run `airflow ...`
    result = parse_csops(list(sandbox["command"]))
    assert result.returncode == 0, result.stderr[-2000:]
    chosen = json.loads(result.stdout.strip().splitlines()[-1])
    assert chosen["handler"] == "command_sandbox"
    assert chosen["arguments"]["system"] == "nexpro"
    assert chosen["arguments"]["accounts"] == int(env_example()["SANDBOX_ACCOUNTS"])
    # The same check refuses what csops does not know.
    assert parse_csops(["sandbox", "nexpro", "--acounts", "3"]).returncode != 0
    assert parse_csops(["sandbox", "hubspot"]).returncode != 0


def test_the_dashboards_service_serves_the_app_against_the_warehouse(compose):
    service = compose["services"]["dashboards"]
    assert service["entrypoint"] == ["csops"]
    result = parse_csops(list(service["command"]))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["handler"] == "command_dashboards"
    environment = environment_of(service)
    # the warehouse the DAG builds (so csops reads it and never builds one of its own), reachable from the host
    assert environment["AIRFLOW_CONN_CS_WAREHOUSE"] == environment_of(compose["services"]["airflow-worker"])[
        "AIRFLOW_CONN_CS_WAREHOUSE"]
    assert environment["CS_DASHBOARDS_HOST"] == "0.0.0.0"
    assert service["ports"][0].endswith(f":{environment['CS_DASHBOARDS_PORT']}")
    assert f":{environment['CS_DASHBOARDS_PORT']}/_stcore/health" in " ".join(service["healthcheck"]["test"])
    assert ("COPY", "--chown=airflow:0 dashboards /opt/airflow/dashboards") in dockerfile_instructions()
    assert dockerfile_env()["CS_DASHBOARDS_DIR"] == "/opt/airflow/dashboards"


def test_sandbox_fills_a_configured_database_without_the_embedded_server(postgres, tmp_path):
    """What the nexpro-sandbox service does: only CS_NEXPRO_URL set, no warehouse, no embedded server."""
    url = create_database(postgres, "sources")
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("CS_", "AIRFLOW_CONN_"))}
    environment.update(CS_NEXPRO_URL=url, CS_LOCAL_DIR=str(tmp_path / "local"),
                       CS_WORLD_DIR=str(tmp_path / "world"), CS_LOCAL_PG_PORT=str(free_port()))
    result = subprocess.run([str(VENV_BIN / "csops"), "sandbox", "nexpro", "--accounts", "6", "--days", "3",
                             "--seed", "3", "--end-date", "2026-11-20"],
                            env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "local" / "postgres").exists(), "the embedded server was set up"
    assert json.loads((tmp_path / "world" / "manifest.json").read_text())["params"]["accounts"] == 6
    with psycopg.connect(url) as connection:
        assert connection.execute("select count(*) from tenants").fetchone()[0] == 6


# --- 3. connections and variables match the code ----------------------------------------------------

def connection_ids_the_dag_uses() -> set[str]:
    """The settings.*_CONN_ID the DAGs name, and those the activation channels default to."""
    paths = [*(REPO_ROOT / "dags").glob("*.py"), *(REPO_ROOT / "include" / "csops" / "activation").glob("*.py")]
    names = {node.attr for path in paths for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings"
             and node.attr.endswith("_CONN_ID")}
    return {getattr(settings, name) for name in names}


def test_every_airflow_service_has_the_dags_connections(compose):
    wanted = {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in connection_ids_the_dag_uses()}
    assert wanted == {f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}",
                      f"AIRFLOW_CONN_{settings.NEXPRO_CONN_ID.upper()}",
                      f"AIRFLOW_CONN_{settings.SALESFORCE_CONN_ID.upper()}",
                      f"AIRFLOW_CONN_{settings.BOARD_CONN_ID.upper()}",
                      f"AIRFLOW_CONN_{settings.SMTP_CONN_ID.upper()}",
                      f"AIRFLOW_CONN_{settings.SLACK_CONN_ID.upper()}"}
    for name, service in airflow_services(compose).items():
        connections = {key for key in environment_of(service) if key.startswith("AIRFLOW_CONN_")}
        assert connections == wanted, name


def postgres_service_for(compose: dict, url: str) -> dict[str, str]:
    """The compose service a Postgres URL points at, after checking the URL's credentials are its own."""
    parts = urlsplit(url)
    assert parts.scheme in ("postgresql", "postgres") and (parts.port or 5432) == 5432
    service = environment_of(compose["services"][parts.hostname])
    assert (unquote(parts.username), unquote(parts.password), parts.path.lstrip("/")) == (
        service["POSTGRES_USER"], service["POSTGRES_PASSWORD"], service["POSTGRES_DB"]), url
    return service


def test_connections_point_at_the_compose_databases(compose):
    airflow = environment_of(compose["services"]["airflow-worker"])
    warehouse = airflow[f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}"]
    nexpro = airflow[f"AIRFLOW_CONN_{settings.NEXPRO_CONN_ID.upper()}"]
    assert urlsplit(warehouse).hostname == "warehouse" and urlsplit(nexpro).hostname == "sources"
    postgres_service_for(compose, warehouse)
    postgres_service_for(compose, nexpro)
    # The sandbox fills the database the DAG reads.
    sandbox = environment_of(compose["services"]["nexpro-sandbox"])
    sandbox_url = sandbox.get(f"AIRFLOW_CONN_{settings.NEXPRO_CONN_ID.upper()}") or sandbox["CS_NEXPRO_URL"]
    assert sandbox_url == nexpro


def test_the_channel_connections_reach_the_local_services(compose, monkeypatch):
    """As .env.example has them, smtp_default reaches the mail-catcher service and slack_default the
    slack-sink service's webhook, read the way the providers' hooks read them."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    airflow = environment_of(compose["services"]["airflow-worker"])
    services = compose["services"]
    for conn_id in (settings.SMTP_CONN_ID, settings.SLACK_CONN_ID):
        variable = f"AIRFLOW_CONN_{conn_id.upper()}"
        monkeypatch.setenv(variable, airflow[variable].strip("'"))
    smtp = SmtpHook(smtp_conn_id=settings.SMTP_CONN_ID)
    smtp.smtp_connection = smtp.get_connection(settings.SMTP_CONN_ID)
    catcher = services["mail-catcher"]["command"]
    assert (smtp.host, str(smtp.port)) == ("mail-catcher", catcher[catcher.index("--port") + 1])
    assert not smtp.use_ssl and not smtp.smtp_starttls and smtp.from_email
    sink = services["slack-sink"]["command"]
    url = SlackWebhookHook(slack_webhook_conn_id=settings.SLACK_CONN_ID)._get_conn_params()["url"]
    port, path = sink[sink.index("--port") + 1], sink[sink.index("--webhook-path") + 1]
    assert url == f"http://slack-sink:{port}/services/{path}"
    for name in ("mail-catcher", "slack-sink"):  # their folders are handed to AIRFLOW_UID before they start
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        volume = services[name]["volumes"][0]
        assert volume in services["airflow-init"]["volumes"] and volume.split(":")[1] in services["airflow-init"][
            "command"][1]
        result = subprocess.run([sys.executable, *services[name]["entrypoint"][1:], *services[name]["command"],
                                 "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


def test_dbt_gets_the_warehouse_from_the_connection(compose, monkeypatch):
    """cs_daily's dbt tasks get their profile from Cosmos' PostgresUserPasswordProfileMapping of the
    cs_warehouse connection; dbt run by hand in a container reads profiles.yml's CS_WAREHOUSE_* variables.
    Both must reach the warehouse service with its credentials."""
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    airflow = environment_of(compose["services"]["airflow-worker"])
    url = airflow[f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}"]
    warehouse = environment_of(compose["services"]["warehouse"])
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}", url)
    mapping = PostgresUserPasswordProfileMapping(conn_id=settings.WAREHOUSE_CONN_ID,
                                                 profile_args={"schema": "analytics"})
    assert mapping.can_claim_connection()
    profile = mapping.profile
    assert (profile["host"], profile["port"], profile["user"], profile["dbname"]) == (
        "warehouse", 5432, warehouse["POSTGRES_USER"], warehouse["POSTGRES_DB"])
    assert list(mapping.env_vars.values()) == [warehouse["POSTGRES_PASSWORD"]]
    profiles_yml = {key: value for key, value in airflow.items() if key.startswith("CS_WAREHOUSE_")}
    assert profiles_yml == dbt_environment(url)


def variables_the_code_reads() -> set[str]:
    """Environment variables read in the package, the adapters and the DAGs (os.environ.get / [] /
    os.getenv, and settings.configured_url's fallback names), and by dbt (env_var('...'))."""
    names = set()
    for path in [*(REPO_ROOT / "include").rglob("*.py"), *(REPO_ROOT / "plugins").rglob("*.py"),
                 *(REPO_ROOT / "dags").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            target = None
            if isinstance(node, ast.Call):
                function, arguments = ast.unparse(node.func), node.args
                if function in ("os.environ.get", "os.getenv", "environ.get", "getenv") and arguments:
                    target = getattr(arguments[0], "value", None)
                elif function.endswith("configured_url") and len(arguments) > 1:
                    target = getattr(arguments[1], "value", None)
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
                target = getattr(node.slice, "value", None)
            if isinstance(target, str):
                names.add(target)
    for path in (REPO_ROOT / "dbt_project").rglob("*"):
        if path.suffix in (".yml", ".sql") and "target" not in path.parts:
            names.update(re.findall(r"env_var\(\s*['\"]([A-Z0-9_]+)['\"]", path.read_text()))
    return names


def test_every_cs_variable_set_is_one_the_code_reads(compose):
    read = variables_the_code_reads()
    assert {"CS_INBOX_DIR", "CS_NEXPRO_URL", "CS_TASK_RETRIES", "CS_WAREHOUSE_HOST"} <= read  # the scan works
    set_by_compose = {key for service in compose["services"].values() for key in environment_of(service)
                      if key.startswith("CS_")}
    set_by_image = {key for key in dockerfile_env() if key.startswith("CS_")}
    assert set_by_compose and set_by_image
    assert (set_by_compose | set_by_image) - read == set()


def test_cs_dbt_project_dir_overrides_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("CS_DBT_PROJECT_DIR", raising=False)
    assert settings.dbt_project_dir() == REPO_ROOT / "dbt_project"
    monkeypatch.setenv("CS_DBT_PROJECT_DIR", str(tmp_path))
    assert settings.dbt_project_dir() == tmp_path.resolve()


# --- 4. the Dockerfile ------------------------------------------------------------------------------

def test_image_is_the_official_airflow_at_the_pinned_version():
    froms = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "FROM"]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert froms == [f"apache/airflow:{pinned_airflow_version()}-python{python}"]


def test_image_installs_the_pins_and_the_package_and_parses_dbt(compose):
    instructions = dockerfile_instructions()
    runs = [arguments for instruction, arguments in instructions if instruction == "RUN"]
    copies = {shlex.split(arguments)[-1]: shlex.split(arguments)[-2]
              for instruction, arguments in instructions if instruction == "COPY"}
    # Pins first, keeping Airflow at the image's version; the Celery provider for the CeleryExecutor.
    requirements = next(destination for destination, source in copies.items() if source == "requirements.txt")
    install = next(run for run in runs if f"-r {requirements}" in run)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert "apache-airflow-providers-celery==" in install
    assert environment_of(compose["services"]["airflow-worker"])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # The package: pyproject.toml and both package roots copied side by side, then `pip install .` there.
    source = str(Path(next(destination for destination, source in copies.items() if source == "pyproject.toml")).parent)
    pip_install = next(index for index, (instruction, arguments) in enumerate(instructions)
                       if instruction == "RUN" and re.search(r"pip install (--no-cache-dir )?\.(\s|$)", arguments))
    workdirs = [arguments for instruction, arguments in instructions[:pip_install] if instruction == "WORKDIR"]
    assert workdirs[-1] == source
    for root in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
            "where"]:
        assert copies.get(f"{source}/{root}") == root
    # DAGs in the image's dags folder; the dbt project where CS_DBT_PROJECT_DIR says, parsed after the copy.
    assert copies["/opt/airflow/dags"] == "dags"
    project = dockerfile_env()["CS_DBT_PROJECT_DIR"]
    assert copies[project] == "dbt_project"
    parse = next(index for index, (instruction, arguments) in enumerate(instructions)
                 if instruction == "RUN" and re.match(r"dbt parse\s", arguments))
    assert f"--project-dir {project} --profiles-dir {project}" in instructions[parse][1]
    copied = next(index for index, (instruction, arguments) in enumerate(instructions)
                  if instruction == "COPY" and arguments.endswith(f" {project}"))
    assert copied < parse


def test_dockerignore_keeps_local_state_out_and_what_the_image_copies_in():
    patterns = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert {".git", ".venv", ".local", ".env"} <= set(patterns)
    sources = [shlex.split(arguments)[-2] for instruction, arguments in dockerfile_instructions()
               if instruction == "COPY"]
    for source in sources:
        assert source not in patterns and not any(source.startswith(f"{pattern}/") for pattern in patterns), source
