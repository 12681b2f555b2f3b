# The image every service of docker-compose.yaml runs (and the one a Kubernetes deployment would run):
# Airflow's official image at the version requirements.txt pins, with the platform's pins, the csops
# package (csops + csops_airflow, a regular install), the DAGs and the dbt project with its manifest.
FROM apache/airflow:3.3.2-python3.11

# The CeleryExecutor's provider, pinned so the image does not depend on what the base image bundles.
ARG CELERY_PROVIDER_VERSION=3.26.0

USER airflow

# Dependencies first, so this layer is rebuilt only when the pins change. Naming apache-airflow at the
# image's own version keeps pip from moving Airflow.
COPY --chown=airflow:0 requirements.txt /opt/csops/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        "apache-airflow-providers-celery==${CELERY_PROVIDER_VERSION}" -r /opt/csops/requirements.txt

# The project package: `csops` on PATH (the nexpro-sandbox service's entry point) and the Airflow adapters.
COPY --chown=airflow:0 pyproject.toml /opt/csops/src/pyproject.toml
COPY --chown=airflow:0 include /opt/csops/src/include
COPY --chown=airflow:0 plugins /opt/csops/src/plugins
WORKDIR /opt/csops/src
RUN pip install --no-cache-dir . && csops --help > /dev/null
WORKDIR /opt/airflow

# Installed into site-packages, the package cannot find the dbt project beside itself: say where it is.
# Local state, the CSV inbox and the sandbox world manifest live under AIRFLOW_HOME (the inbox and world
# are volumes in docker-compose.yaml).
ENV CS_DBT_PROJECT_DIR=/opt/airflow/dbt_project \
    CS_LOCAL_DIR=/opt/airflow/csops \
    CS_INBOX_DIR=/opt/airflow/inbox \
    CS_WORLD_DIR=/opt/airflow/world \
    CS_DASHBOARDS_DIR=/opt/airflow/dashboards \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 dbt_project /opt/airflow/dbt_project
COPY --chown=airflow:0 dashboards /opt/airflow/dashboards

# The manifest Cosmos renders the DAG's dbt tasks from (LoadMode.DBT_MANIFEST). Parsing needs no database;
# profiles.yml's defaults are enough.
RUN dbt parse --project-dir /opt/airflow/dbt_project --profiles-dir /opt/airflow/dbt_project --quiet \
    && test -s /opt/airflow/dbt_project/target/manifest.json

# Mount points of the shared volumes, writable by the airflow user and group 0 (any AIRFLOW_UID).
RUN mkdir -p /opt/airflow/csops /opt/airflow/inbox /opt/airflow/world /opt/airflow/auth \
    && chmod -R g+rwX /opt/airflow/csops /opt/airflow/inbox /opt/airflow/world /opt/airflow/auth
