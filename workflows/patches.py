"""Workflow versioning: the `workflow.patched` ids of changes made under running orders.

Orders live for weeks, so a change to workflow code must replay every history recorded
by the code before it. A change that alters the commands a workflow issues (activities,
timers, children, status projections) runs only where `workflow.patched(ID)` says the
history was made by code that has it; histories from before keep their old path. Once no
running order can have been started before a patch, the old branch is removed and the id
is given to `workflow.deprecate_patch` (see README, "Changing workflow code").

Why patches and not worker versioning with build ids: an order lives longer than we keep
old worker builds running, and one worker fleet serving every order keeps the dev stack
and production alike; build-id pinning would need a fleet per build until its last order
closes (30 days and more).
"""

from __future__ import annotations

# issue 7: a final status is never left, stages stop after a whole-order cancel,
# one CANCEL return per cancelled unit, fulfillment reports apply once
TERMINAL_GUARD = "oms-7-terminal-guard"
# issue 7: release children outlive a continue-as-new of their order (ABANDON) and the
# order no longer waits on child handles
ABANDONED_CHILDREN = "oms-7-abandoned-children"
# issue 8: work orders go to partners' webhooks outside the order's lock, one task per
# release (a failing partner never holds back a cancel); a location that was sent a work
# order gets a signed cancellation; a partner's refusal holds the order until resumed
PARTNERS_OUTSIDE_LOCK = "oms-8-partners-outside-lock"
# issue 8: a stage's failure stops it and says why: a business failure (non-retryable)
# puts the order ON_HOLD with the stage and the error until `resume`; a technical one
# shows its last error after the channel's number of attempts and retries in rounds; the
# order's hold reasons are a search attribute (OmsHoldReason); the order response goes to
# the web shop outside the order's lock
STAGE_FAILURES = "oms-8-stage-failures"
# issue 10: after delivery the order takes returns (`request_return`), each a
# ReturnWorkflow child; the order becomes PARTIALLY_RETURNED / RETURNED as units come
# back and COMPLETED once the window is over and no return is open
RETURNS = "oms-10-returns"
# issue 13: fewer round trips per order: a release tells its order of each step without
# waiting for the signal's delivery (one sender keeps them in order; the release closes
# once all are delivered), and the order upserts a search attribute only when its value
# changes
ROUND_TRIPS = "oms-13-round-trips"
# issue 13: a notice, delivery or handler that starts while the order writes its last
# projection is waited for before the order closes (asked only on that branch: an order
# that is idle after its last write issues no marker)
IDLE_AFTER_FLUSH = "oms-13-idle-after-flush"
# issue 13: an order started now takes every change above (terminal guard to round trips)
# on this one marker instead of six (each marker is two history events: the marker and a
# TemporalChangeVersion upsert); orders started before keep asking for each on its own
BASELINE_13 = "oms-13-baseline"
# issue 13: a release's step tells the order from the step's activity (it signals
# `fulfillment_progress` once the store has the step) instead of from the release's
# workflow, whose signal's delivery cost the release a workflow task per step; a release
# with this marker needs no other (it takes round trips' ordering as well)
PROGRESS_FROM_ACTIVITIES = "oms-13-progress-from-activities"
# issue 13: a release's steps (release, pick, ship, delivery, receipt, return to sender,
# cancel) are local activities, run in the workflow task that takes the store's report:
# a step is one workflow task and no activity task (it was two workflow tasks and an
# activity task); a release with this marker needs no other (it takes progress from
# activities and round trips' ordering as well)
LOCAL_STEPS = "oms-13-local-steps"
# issue 13: an order started now takes every change up to oms-13-baseline on this one
# marker, and: it starts its releases' workflows while submit_work_orders writes each
# release (its lines and empty shipment) with the work orders, and records the releases
# when the submission is done; a release's workflow begins with the pick (its first step
# no longer writes the release and signals the order: a signal, a workflow task and a
# local activity fewer per release, and no patch marker in the release). Orders started
# before keep oms-13-baseline (or their own markers), and their releases their first step.
RELEASES_AT_SUBMISSION = "oms-13-releases-at-submission"
# chaos seed 7001 (tests/integration/test_cancel_in_flight.py): a cancel in flight decides
# how the order ends. A release's report that settles the last open line (the cancel's
# own confirmation) no longer moves the order to RETURNED or DELIVERED, which let it
# complete before the cancel had recorded its CANCEL return; the last cancel settles the
# status once its return is recorded. An order whose other lines came back to sender ends
# RETURNED (then COMPLETED once their returns are received), not CANCELLED; a CANCEL
# return recorded after the order ended is projected. Asked only where the paths differ.
CANCEL_IN_FLIGHT = "oms-7001-cancel-in-flight"
