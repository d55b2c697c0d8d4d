"""dispatch: service centers, technicians, jobs under SLA, and revisits (port 8002, publishes `dispatch.events`)."""
