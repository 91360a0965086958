"""The app's routes are built once (web.app.include, web.routes.ApiRoute; issue 24, ADR 0041)
and are the routes FastAPI's own include_router gives: the same routes in the same order, with
the same methods, paths, dependencies, parameters, responses and settings, and the same
/openapi.json byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from permanence.runtime import Runtime
from permanence.web import app as web_app
from permanence.web.routes import ApiRoute


def _value(x: Any) -> Any:
    if isinstance(x, DefaultPlaceholder):
        return ("default", _value(x.value))
    return getattr(x, "__qualname__", x)


def _tree(d: Dependant) -> tuple[Any, ...]:
    params = [
        (p.name, type(p.field_info).__name__, repr(p.field_info.annotation), p.alias)
        for p in (*d.path_params, *d.query_params, *d.header_params, *d.cookie_params)
    ]
    body = [(p.name, repr(p.field_info.annotation)) for p in d.body_params]
    return (_value(d.call), params, body, [_tree(s) for s in d.dependencies])


def _routes(app: FastAPI) -> list[tuple[Any, ...]]:
    """Every route as FastAPI iterates them (an included router's routes in its place)."""
    rows: list[tuple[Any, ...]] = []
    for context in iter_route_contexts(app.routes):
        route: Any = context._effective_route
        if not isinstance(context.original_route, APIRoute):
            row: tuple[Any, ...] = (type(context.original_route).__name__, route.path, route.name)
            rows.append((*row, sorted(getattr(route, "methods", None) or ())))
            continue
        fields = route.response_fields
        rows.append(
            (
                route.path,
                route.path_format,
                route.name,
                sorted(route.methods),
                _value(route.endpoint),
                route.include_in_schema,
                [_value(d.dependency) for d in route.dependencies],
                _tree(route.dependant),
                repr(route.body_field.field_info.annotation) if route.body_field else None,
                route.dependency_overrides_provider is app,
                _value(route.response_class),
                _value(route.strict_content_type),
                route.status_code,
                list(route.tags),
                route.unique_id,
                route.operation_id,
                repr(route.response_model),
                sorted((str(code), repr(answer)) for code, answer in route.responses.items()),
                {str(code): repr(f.field_info.annotation) for code, f in fields.items()},
                route.summary,
                route.description,
                route.response_description,
                bool(route.deprecated),
                bool(route.callbacks),
                route.openapi_extra,
                route.max_body_size,
                route.response_model_exclude_none,
                route.response_model_by_alias,
            )
        )
    return rows


def _include_router(app: FastAPI, router: APIRouter, *, include_in_schema: bool = True) -> None:
    app.include_router(router, include_in_schema=include_in_schema)


def test_the_app_has_the_routes_and_schema_include_router_gives(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = web_app.create_app(rt)
    with monkeypatch.context() as m:
        m.setattr(web_app, "include", _include_router)
        reference = web_app.create_app(rt)
    # The reference is FastAPI's own inclusion (routers kept whole, each route built again for
    # the app); ours holds the routes themselves.
    kept_whole = [r for r in reference.router.routes if type(r).__name__ == "_IncludedRouter"]
    assert len(kept_whole) > 30
    assert [r for r in ours.router.routes if type(r).__name__ == "_IncludedRouter"] == []
    routes = _routes(ours)
    assert len(routes) > 250
    assert routes == _routes(reference)
    with TestClient(ours) as a, TestClient(reference) as b:
        schema = a.get("/openapi.json")
        assert schema.status_code == 200
        assert schema.content == b.get("/openapi.json").content
        assert a.get("/healthz").json()["status"] == "ok"
    # The schema is the API's: the pages (the rights desk's, added by themselves, included)
    # stay out of it.
    paths = schema.json()["paths"]
    assert {p.split("/")[1] for p in paths} == {"api", "opendsr"}
    assert len(paths) > 70


def test_the_api_routes_share_their_error_fields(rt: Runtime) -> None:
    """Every route that names an error model is an ApiRoute (one field per model), so the
    start-up does not build ~850 validators again when a router forgets its route class."""
    app = web_app.create_app(rt)
    with_models = [
        r
        for r in app.router.routes
        if isinstance(r, APIRoute) and any("model" in a for a in r.responses.values())
    ]
    assert len(with_models) > 80
    assert [r.path for r in with_models if type(r) is not ApiRoute] == []
    fields = {id(f) for r in with_models for f in r.response_fields.values()}
    assert len(fields) == 2  # Problem, and OpenDSR's error object


def _router_with_one_route() -> APIRouter:
    router = APIRouter(prefix="/x")

    @router.get("/y")
    def y() -> dict[str, str]:
        return {}

    return router


def test_include_refuses_what_it_cannot_copy() -> None:
    app = FastAPI()
    nested = APIRouter()
    nested.include_router(_router_with_one_route())
    with pytest.raises(TypeError, match="include_router"):
        web_app.include(app, nested)
    mounted = APIRouter()
    mounted.mount("/m", FastAPI())
    with pytest.raises(TypeError, match="cannot be copied"):
        web_app.include(app, mounted)
    with pytest.raises(TypeError, match="cannot be copied"):
        web_app.include(app, APIRouter(routes=[APIRoute("/z", lambda: None, max_body_size=1)]))
    started = _router_with_one_route()
    started.on_startup.append(lambda: None)
    with pytest.raises(TypeError, match="handlers"):
        web_app.include(app, started)
    prefixed = FastAPI()
    prefixed.router.prefix = "/p"
    with pytest.raises(TypeError, match="settings of its own"):
        web_app.include(prefixed, _router_with_one_route())
    assert [r for r in app.router.routes if getattr(r, "path", "") == "/x/y"] == []
    web_app.include(app, _router_with_one_route(), include_in_schema=False)
    (added,) = [r for r in app.router.routes if getattr(r, "path", "") == "/x/y"]
    assert isinstance(added, APIRoute)
    assert added.include_in_schema is False
    assert added.dependency_overrides_provider is app
