"""Partners' webhooks: subscriptions, the durable delivery queue fed by intake's consumer, and the delivery
worker that POSTs signed CloudEvents (design.md, intake, Webhooks)."""
