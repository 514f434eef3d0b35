"""Status vocabulary: engine states, Carousel codes (0/1/2/4) and the monotone rank that orders them.

Pure. A status update applies only if its rank is higher than the stored one, so out-of-order
callbacks never move a message backwards and a final status never changes. It sits at the top of the
package because both directions speak it: dispatch (engine -> carrier) records send outcomes and
inbound (carrier -> engine) maps status callbacks, and neither should import the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from engine.frozen import fast_init

# Carousel codes applications see.
PENDING: Final = 0
DELIVERED: Final = 1
FAILED: Final = 2
QUEUED_AT_CARRIER: Final = 4

FINAL_RANK: Final = 100

State = Literal[
    "queued", "claimed", "sending", "sent", "delivered", "undelivered", "failed", "suppressed",
    "canceled", "unknown", "expired",
]


@fast_init
@dataclass(frozen=True, slots=True)
class StatusChange:
    """What one provider status means for the stored message."""

    state: State
    status: int
    rank: int

    @property
    def final(self) -> bool:
        return self.rank >= FINAL_RANK


# Twilio's MessageStatus values. Anything not final is "queued at carrier" (4) until a receipt.
_TWILIO: Final[dict[str, StatusChange]] = {
    "accepted": StatusChange("sent", QUEUED_AT_CARRIER, 10),
    "scheduled": StatusChange("sent", QUEUED_AT_CARRIER, 10),
    "queued": StatusChange("sent", QUEUED_AT_CARRIER, 10),
    "sending": StatusChange("sent", QUEUED_AT_CARRIER, 20),
    "sent": StatusChange("sent", QUEUED_AT_CARRIER, 30),
    "delivered": StatusChange("delivered", DELIVERED, FINAL_RANK),
    "read": StatusChange("delivered", DELIVERED, FINAL_RANK),
    "undelivered": StatusChange("undelivered", FAILED, FINAL_RANK),
    "failed": StatusChange("failed", FAILED, FINAL_RANK),
    "canceled": StatusChange("failed", FAILED, FINAL_RANK),
}

# Engine-side outcomes.
UNKNOWN: Final = StatusChange("unknown", PENDING, 5)
TEST_DELIVERED: Final = StatusChange("delivered", DELIVERED, FINAL_RANK)
SUPPRESSED: Final = StatusChange("suppressed", FAILED, FINAL_RANK)
SEND_FAILED: Final = StatusChange("failed", FAILED, FINAL_RANK)
# Still unsent when its lifetime ran out: never sent late (status 2, reason 'expired' in its delivery report).
EXPIRED: Final = StatusChange("expired", FAILED, FINAL_RANK)


def from_twilio(message_status: str) -> StatusChange | None:
    """Map a Twilio MessageStatus to our change, or None for a value we do not know."""
    return _TWILIO.get(message_status.strip().lower())
