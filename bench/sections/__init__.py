"""The table's sections for one size: each measures its floors and figures side by side.

Within a section every repetition takes one sample of each floor and each figure in
turn, so the floor and the figure of a row see the same machine (ratios, not absolute
timings, are what one run can be trusted for on a shared machine).
"""

from bench.sections.events import event_rows, expiry_rows
from bench.sections.listings import listing_rows
from bench.sections.rpc import rpc_rows
from bench.sections.summary import buildbot_rows, memory_rows

__all__ = ["buildbot_rows", "event_rows", "expiry_rows", "listing_rows", "memory_rows", "rpc_rows"]
