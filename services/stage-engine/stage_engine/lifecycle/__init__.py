"""The pure lifecycle rules: stages, value, risk and milestones, per profile key.

No I/O, no clock reads, no randomness: time is always an argument, so the
rules can be replayed and tested exhaustively. The runtime (consume, timers,
store) calls advance(), expire() and merge_anonymous() and stores
UserState.to_dict().
"""

from stage_engine.lifecycle.config import ConfigError, LifecycleConfig, load_lifecycle_config
from stage_engine.lifecycle.emit import profile_of
from stage_engine.lifecycle.machine import Step, advance, expire, rescore
from stage_engine.lifecycle.merge import merge_anonymous
from stage_engine.lifecycle.rfm import RfmEdges, compute_rfm_edges
from stage_engine.lifecycle.state import UserState

__all__ = [
    "ConfigError",
    "LifecycleConfig",
    "RfmEdges",
    "Step",
    "UserState",
    "advance",
    "compute_rfm_edges",
    "expire",
    "load_lifecycle_config",
    "merge_anonymous",
    "profile_of",
    "rescore",
]
