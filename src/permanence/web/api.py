"""The /api/v1 routes in one list, assembled from the routers the features own (ADR 0021).

Each feature's routes live beside its service (``<feature>/api.py``); this module only puts
them in order. Added route by route (not ``include_router``) so that ``router.routes`` lists
every route: the isolation matrix (tests/web/test_isolation_matrix.py) walks it.
"""

from __future__ import annotations

from fastapi import APIRouter

from permanence.accounts import api as accounts_api
from permanence.calls import api as calls_api
from permanence.consents import api as consents_api
from permanence.messages import agenda_api, call_api, medical_api
from permanence.messages import api as messages_api
from permanence.recordings import api as recordings_api
from permanence.rights import api as rights_api
from permanence.routing import api as routing_api
from permanence.staff import auth_api, keys_api
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1")
for _feature in (
    auth_api.router,
    accounts_api.router,
    calls_api.router,
    call_api.router,  # messages and appointments taken during a call
    consents_api.router,
    messages_api.router,
    agenda_api.router,
    keys_api.router,
    recordings_api.recordings_router,
    rights_api.router,
    medical_api.router,  # the break-glass request (need-to-know)
    routing_api.api_router,
):
    router.routes.extend(_feature.routes)

__all__ = ["ERRORS", "router"]
