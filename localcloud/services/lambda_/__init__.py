"""Lambda: function configuration and invocation, provisioned concurrency, and the runner.

``runner.py`` starts warm worker subprocesses by the path of ``_worker.py``, which loads
``_chaos.py`` from beside itself: the three stay together here.
"""

from localcloud.services.lambda_.account import account_settings
from localcloud.services.lambda_.concurrency import provisioned_concurrency
from localcloud.services.lambda_.functions import config_round_trip, runs_real_handlers

__all__ = ["account_settings", "config_round_trip", "provisioned_concurrency", "runs_real_handlers"]
