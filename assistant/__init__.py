"""A research assistant that answers questions about paper abstracts, citing the papers it used.

The data path reads top to bottom through the modules:
corpus -> chunks -> embedding -> store -> ingest -> lexical/retrieval -> answer -> engine -> cli/api/ui.
"""

__version__ = "0.1.0"
