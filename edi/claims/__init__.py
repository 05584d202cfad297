"""The 837P claim model: the loop table, the walker and the frozen claim values."""

from edi.claims.model import Claim, PatientIdentity, ServiceLine
from edi.claims.walker import ClaimWalker

__all__ = ["Claim", "ClaimWalker", "PatientIdentity", "ServiceLine"]
