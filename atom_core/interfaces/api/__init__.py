"""The REST API (FastAPI), served alone by `atom api` or mounted into Reflex."""
