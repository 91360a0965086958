"""Statistics: the public names of the feature, from the modules that hold them.

- ``periods``: Period (whole Paris days);
- ``sql``: the SQL building blocks (outcome conditions, seconds, histograms, percentile);
- ``account``: the figures of one account (from the aggregates; the scan as reference);
- ``aggregates``: the hourly aggregates and how they are kept equal to the rows (ADR 0032);
- ``operators``: per-operator daily statistics; ``board``: the live board.
"""

from __future__ import annotations

from permanence.stats.account import (
    ACCOUNT_READERS,
    AccountStats,
    Counts,
    account_statistics,
    percentile_of_counts,
    scan_account_statistics,
)
from permanence.stats.board import (
    BOARD_READERS,
    STALE_WAIT,
    AccountBoard,
    Board,
    OperatorBoard,
    board,
)
from permanence.stats.operators import (
    OperatorStats,
    count_staff_stats_due,
    operator_statistics,
    purge_staff_stats,
    team_statistics,
)
from permanence.stats.periods import EARLIEST_DAY, LATEST_DAY, MAX_PERIOD_DAYS, Period
from permanence.stats.sql import (
    ABANDON_EDGES,
    ABANDONED,
    ANSWER_EDGES,
    ANSWERED,
    EXPIRED,
    FAILED,
    MISSED,
    TRANSFERRED,
    VOICEMAIL,
    answer_seconds,
    billed_minutes,
    count_if,
    hist_labels,
    in_period,
    percentile,
    seconds_between,
    sum_if,
    talk_seconds,
    utc_hour,
)

__all__ = [
    "ABANDONED",
    "ABANDON_EDGES",
    "ACCOUNT_READERS",
    "ANSWERED",
    "ANSWER_EDGES",
    "BOARD_READERS",
    "EARLIEST_DAY",
    "EXPIRED",
    "FAILED",
    "LATEST_DAY",
    "MAX_PERIOD_DAYS",
    "MISSED",
    "STALE_WAIT",
    "TRANSFERRED",
    "VOICEMAIL",
    "AccountBoard",
    "AccountStats",
    "Board",
    "Counts",
    "OperatorBoard",
    "OperatorStats",
    "Period",
    "account_statistics",
    "answer_seconds",
    "billed_minutes",
    "board",
    "count_if",
    "count_staff_stats_due",
    "hist_labels",
    "in_period",
    "operator_statistics",
    "percentile",
    "percentile_of_counts",
    "purge_staff_stats",
    "scan_account_statistics",
    "seconds_between",
    "sum_if",
    "talk_seconds",
    "team_statistics",
    "utc_hour",
]
