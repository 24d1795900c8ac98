"""The model catalogue: context windows, prices, capabilities and lifecycle of known
models, shipped in `models.json` (generated from LiteLLM's MIT-licensed data by
`scripts/refresh_catalogue.py`) and extended by a config's private files. See
docs/catalogue.md."""

from gateway.catalogue.entry import CAPABILITIES, PRICE_FIELDS, Capabilities, ModelEntry, Prices
from gateway.catalogue.store import KIND_FAMILIES, Catalogue, Match, load, shipped

__all__ = [
    "CAPABILITIES",
    "KIND_FAMILIES",
    "PRICE_FIELDS",
    "Capabilities",
    "Catalogue",
    "Match",
    "ModelEntry",
    "Prices",
    "load",
    "shipped",
]
