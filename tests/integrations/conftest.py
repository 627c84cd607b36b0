"""In the peers' CI step (``scripts/test_peers.sh`` sets ``RLOBJ_REQUIRE_PEERS=1``) a missing TRL or
verl is an error, not a skip: the step must not pass without running the real packages."""

import os

if os.environ.get("RLOBJ_REQUIRE_PEERS") == "1":
    import trl  # noqa: F401
    import verl.trainer.ppo.core_algos  # noqa: F401
