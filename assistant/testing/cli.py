"""`python -m assistant.testing.cli ...`: the `assistant` command with the test doubles registered
(ASSISTANT_EMBED_BACKEND=hash), for tests that run the command line in a subprocess."""

import assistant.testing  # noqa: F401  (registers the hash embedder)
from assistant.cli import main

if __name__ == "__main__":
    main()
