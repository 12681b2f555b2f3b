"""The board sandbox: a local stand-in for board's API v1 (clients, projects, invoices) over Postgres."""
