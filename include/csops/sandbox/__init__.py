"""Stand-ins for the company's systems, so the whole pipeline runs on a laptop or in CI."""
