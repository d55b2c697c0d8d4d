"""`python -m services.dispatch`: serve dispatch with uvicorn on $PORT (default 8002)."""

from services.dispatch.app import DispatchSettings, create_app
from shared.runtime import serve

if __name__ == "__main__":
    serve(create_app, DispatchSettings())
