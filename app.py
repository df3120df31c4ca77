"""Entry point of the web UI (and the HTTP API served beside it): `python app.py`."""

from assistant.server import main

if __name__ == "__main__":
    main()
