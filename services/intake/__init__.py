"""intake: service requests, triage and escalation (port 8001, publishes `intake.events`)."""
