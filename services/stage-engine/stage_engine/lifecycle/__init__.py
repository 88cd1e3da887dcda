"""The pure lifecycle rules: stages, value, risk and milestones, per profile key.

No I/O, no clock reads, no randomness: time is always an argument, so the
rules can be replayed and tested exhaustively. The runtime calls:

- advance(state | None, event, config) for each event of a profile key, in
  partition order. It first fires the timers due strictly before the event's
  time. The returned next_due_at may equal the event's time (a timer due at
  exactly that moment); the timer loop then fires it with expire().
- expire(state, now, config) for due rows; transition times are the moments
  the conditions became true, never `now`.
- merge_anonymous(user | None, anonymous, user_id, config) when an identify or
  alias joins an anonymous id to a user id, then advance() with that identify
  (the first event carrying a user id is what signs a prospect up).
- profile_of(state) for the HTTP view; compute_rfm_edges() now and then over
  the population, swapped in with config.model_copy(update={"rfm_edges": ...}).

Stage-change reasons: first_seen (None→prospect), signup (→new),
onboarding_complete (new→active), inactivity (→silent), churn (→churned),
reactivated (silent/churned→active). Other kinds: inactivity_milestone
(reason inactivity), purchase_level_changed (reason purchase), risk_flag_raised
(reason risk; flag activity_drop | order_value_drop | negative_feedback).
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
