"""Entry point of the web UI (and the HTTP API served beside it): `python app.py`, the same as
`assistant serve`."""

from assistant.cli import main

if __name__ == "__main__":
    main(["serve"])
