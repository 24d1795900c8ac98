"""Data governance: PII detection, redaction and restoring, output filtering (pure, no I/O).

See docs/governance.md for the policies and their configuration.
"""

from gateway.governance.detectors import DETECTORS, PII_TYPES, Span, detect
from gateway.governance.output_filter import FilterResult, OutputFilter
from gateway.governance.policy import PII_ACTIONS, Inspection, PiiPolicy, inspect_request
from gateway.governance.redact import Redactor, Restorer

__all__ = [
    "DETECTORS",
    "PII_ACTIONS",
    "PII_TYPES",
    "FilterResult",
    "Inspection",
    "OutputFilter",
    "PiiPolicy",
    "Redactor",
    "Restorer",
    "Span",
    "detect",
    "inspect_request",
]
