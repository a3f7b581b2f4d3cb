"""Budget pacing: how much price counts when a paced budget runs ahead of or behind its pace.

A paced budget is meant to be spent evenly over its period: by any moment, the share of the
limit spent should match the share of the period gone. The router compares the two and scales
the price weight of the score by 2 ** (gain * ahead), where `ahead` is the spend above the pace
line measured in "horizons" (the spend the limit allows over `horizon` of the period). Ahead of
pace, price counts more and cheaper deployments win; behind it, latency and errors count more
and the faster, dearer deployments are used while the budget has room for them. Over a period
the spend then follows the line closely whatever the traffic and the providers' health do, so
the total varies less from period to period (docs/routing.md, "Budget pacing").
"""

from __future__ import annotations

import math

from relaygate.config.schema import PacingSettings


def price_scale(
    spent_usd: float,
    limit_usd: float,
    elapsed_share: float,
    settings: PacingSettings,
) -> float:
    """The factor for the price weight: above 1 when spending runs ahead of pace, below 1 when
    it runs behind; `elapsed_share` is the part of the budget's period gone (0..1)."""
    if limit_usd <= 0:
        return settings.max_scale
    share = min(1.0, max(0.0, elapsed_share))
    ahead = (spent_usd - limit_usd * share) / (limit_usd * settings.horizon)
    bound = math.log2(settings.max_scale)
    return float(2.0 ** min(bound, max(-bound, settings.gain * ahead)))
