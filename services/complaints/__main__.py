"""`python -m services.complaints`: serve complaints with uvicorn on $PORT (default 8004)."""

from services.complaints.app import ComplaintsSettings, create_app
from shared.runtime import serve

if __name__ == "__main__":
    serve(create_app, ComplaintsSettings())
