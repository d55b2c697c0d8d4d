"""`python -m services.dispatch`: serve dispatch with uvicorn on $PORT (default 8002)."""

from services.dispatch.app import DispatchSettings, create_app, tune_garbage_collection
from shared.runtime import serve

if __name__ == "__main__":
    tune_garbage_collection()
    serve(create_app, DispatchSettings())
