"""The tables dispatch owns besides the shared ones (importing the module registers them)."""

import services.dispatch.read_model  # noqa: F401

TABLES = ["dispatch_requests", "dispatch_jobs", "dispatch_centers", "dispatch_technicians", "dispatch_technician_skills"]
