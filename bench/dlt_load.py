"""Load one Postgres table into another Postgres database with dlt, as a user of dlt would.

Run by bench/extract_load.py with the .venv-bench interpreter (dlt is not a platform dependency):
    BENCH_SOURCE_URL=... BENCH_TARGET_URL=... python bench/dlt_load.py TABLE WORKDIR
Prints one JSON line: rows loaded, seconds, peak RSS in MB.
"""

import json
import os
import resource
import sys
import time

table, workdir = sys.argv[1:3]
source_url, destination_url = os.environ["BENCH_SOURCE_URL"], os.environ["BENCH_TARGET_URL"]
os.environ["DLT_DATA_DIR"] = workdir
os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
os.chdir(workdir)

import dlt  # noqa: E402
from dlt.sources.sql_database import sql_database  # noqa: E402

started = time.monotonic()
source = sql_database(credentials=source_url.replace("postgresql://", "postgresql+psycopg2://"),
                      table_names=[table])
pipeline = dlt.pipeline(pipeline_name="bench_dlt", destination=dlt.destinations.postgres(destination_url),
                        dataset_name="dlt_raw", pipelines_dir=workdir)
info = pipeline.run(source, write_disposition="replace")
elapsed = time.monotonic() - started
rows = pipeline.last_trace.last_normalize_info.row_counts.get(table, 0)
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"rows": rows, "seconds": elapsed, "peak_rss_mb": rss / 1024}))
