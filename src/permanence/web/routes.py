"""The API's route class: its error answers' schemas built once per model, not per route.

Every /api/v1 route names the same nine or ten error answers (``responses={code: {"model":
Problem}}``, web/schemas.py ``ERRORS``), and FastAPI (0.165) builds a pydantic validator and
serializer for each of them, route by route: about 850 for ~90 routes, a tenth of the start-up
(issue 24, ADR 0041). Those fields only feed the OpenAPI document, where a model is a
reference to its one schema; so the routes share one field per model. The responses
themselves, and everything else FastAPI builds for a route, are unchanged.
tests/web/test_route_inclusion.py compares /openapi.json with FastAPI's own building.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from fastapi.routing import APIRoute
from fastapi.utils import create_model_field, is_body_allowed_for_status_code
from pydantic import BaseModel


class ApiRoute(APIRoute):
    """An ``APIRoute`` whose ``responses`` models share their field (``APIRouter(...,
    route_class=ApiRoute)``)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        responses: dict[int | str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        responses = responses or {}
        shared = {code for code, answer in responses.items() if _shared(answer)}
        own = {code: answer for code, answer in responses.items() if code not in shared}
        super().__init__(path, endpoint, responses=own, **kwargs)
        built = self.response_fields
        for code in shared:
            assert is_body_allowed_for_status_code(code), (
                f"Status code {code} must not have a response body"
            )
        self.responses = responses
        # In the order of the responses, as FastAPI builds them.
        self.response_fields = {
            code: _field(answer["model"]) if code in shared else built[code]
            for code, answer in responses.items()
            if code in shared or code in built
        }


def _shared(answer: dict[str, Any]) -> bool:
    model = answer.get("model")
    return isinstance(model, type) and issubclass(model, BaseModel)


@cache
def _field(model: type[BaseModel]) -> Any:
    """The one serialization field of an error model; in the OpenAPI document a model is a
    ``$ref`` to its schema, whatever the field's name."""
    return create_model_field(name=f"Response_{model.__name__}", type_=model, mode="serialization")
