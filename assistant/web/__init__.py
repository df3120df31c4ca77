"""The web edge: one FastAPI app serving the Gradio UI (`ui`) and the HTTP API (`api`) over one
Engine (`holder`). Imports point down only: cli -> web -> engine -> the rest."""
