"""Kafka topics of the contract (design.md, Services, ports, topics)."""

INTAKE = "intake.events"
DISPATCH = "dispatch.events"
WARRANTY = "warranty.events"
COMPLAINTS = "complaints.events"
ANALYTICS_ALERTS = "analytics.alerts"

DOMAIN_TOPICS = (INTAKE, DISPATCH, WARRANTY, COMPLAINTS)


def dlq_for(topic: str) -> str:
    return f"{topic}.dlq"


ALL_TOPICS = DOMAIN_TOPICS + tuple(dlq_for(t) for t in DOMAIN_TOPICS)
