"""Custom search attributes (DESIGN section 4): registered by the dev launcher and compose."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORDER_STATUS = SearchAttributeKey.for_keyword("OmsOrderStatus")
SALES_CHANNEL = SearchAttributeKey.for_keyword("OmsSalesChannel")
CUSTOMER_ID = SearchAttributeKey.for_keyword("OmsCustomerId")
ORDER_TOTAL = SearchAttributeKey.for_float("OmsOrderTotal")
LOCATIONS = SearchAttributeKey.for_keyword_list("OmsLocations")
AWAITING_APPROVAL = SearchAttributeKey.for_bool("OmsAwaitingApproval")
# why the order is held or which stage is failing (its hold reasons, shortened); unset
# when nothing is wrong
HOLD_REASON = SearchAttributeKey.for_keyword("OmsHoldReason")

ALL = (
    ORDER_STATUS,
    SALES_CHANNEL,
    CUSTOMER_ID,
    ORDER_TOTAL,
    LOCATIONS,
    AWAITING_APPROVAL,
    HOLD_REASON,
)
