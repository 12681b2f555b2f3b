"""The Nexpro tables the platform extracts, with the key each is merged on.

Keys are declared here rather than read from the source, because product databases often lack the
constraint (event tables especially); the loader enforces them on the warehouse side.
"""

from csops.extract.engine import SourceTable

SOURCE_NAME = "nexpro"
RAW_SCHEMA = "raw_nexpro"

NEXPRO_TABLES = (
    SourceTable("plans", ("plan_id",)),
    SourceTable("tenants", ("tenant_id",)),
    SourceTable("tenant_plans", ("tenant_plan_id",)),
    SourceTable("users", ("user_id",)),
    SourceTable("login_events", ("login_event_id",)),
    SourceTable("webinars", ("webinar_id",)),
    SourceTable("registrations", ("registration_id",)),
    SourceTable("viewing_sessions", ("viewing_session_id",)),
    SourceTable("feature_events", ("feature_event_id",)),
    SourceTable("nps_responses", ("nps_response_id",)),
    SourceTable("data_transfer_daily", ("tenant_id", "usage_date")),
)
NEXPRO_TABLES_BY_NAME = {table.name: table for table in NEXPRO_TABLES}
