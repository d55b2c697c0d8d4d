"""`python -m services.warranty`: serve warranty with uvicorn on $PORT (default 8003)."""

from services.warranty.app import WarrantySettings, create_app
from shared.runtime import serve

if __name__ == "__main__":
    serve(create_app, WarrantySettings())
