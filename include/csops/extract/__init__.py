"""Extract-load: copy source tables into the warehouse's raw schemas, incrementally, with an audit trail."""
