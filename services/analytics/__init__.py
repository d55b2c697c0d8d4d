"""analytics: projections of every topic into throughput, satisfaction and scorecard views, alerts and a
dashboard (port 8005; publishes nothing)."""
