"""`python -m services.analytics`: serve analytics with uvicorn on $PORT (default 8005)."""

from services.analytics.app import AnalyticsSettings, create_app
from shared.runtime import serve

if __name__ == "__main__":
    serve(create_app, AnalyticsSettings())
