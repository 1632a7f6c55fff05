"""chatsift's contracts: record models, config models and explicit Arrow schemas.

This package depends on pydantic and pyarrow only, never on the rest of chatsift.
"""

from schemas.arrow import CONVERSATION_SCHEMA, LEDGER_SCHEMA, SCHEMA_VERSION
from schemas.conversation import Conversation, Provenance, Role, Turn
from schemas.ledger import DROP_REASONS, Dropped, DropReason, RunReport, StageReport, StageResult

__all__ = [
    "CONVERSATION_SCHEMA",
    "DROP_REASONS",
    "LEDGER_SCHEMA",
    "SCHEMA_VERSION",
    "Conversation",
    "DropReason",
    "Dropped",
    "Provenance",
    "Role",
    "RunReport",
    "StageReport",
    "StageResult",
    "Turn",
]
