"""CS Ops data platform: extract-load, sandbox systems and run tooling for the daily CS pipeline."""
