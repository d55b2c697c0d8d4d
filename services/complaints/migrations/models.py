"""The tables complaints owns besides the shared ones (importing the module registers them)."""

import services.complaints.read_model  # noqa: F401

TABLES = ["complaints", "known_requests", "known_jobs"]
