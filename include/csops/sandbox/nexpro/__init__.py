"""The Nexpro product database sandbox: its schema and a deterministic world generator."""
