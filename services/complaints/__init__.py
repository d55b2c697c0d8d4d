"""complaints: complaints, their deadlines and escalation levels (design.md, complaints :8004)."""
