"""Operator endpoints: API keys (shown once), the provider registry, and contracts (sent to the contracts service
over Kafka). Every provider a key or contract names must be registered and active."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from utfall_events.auth import ApiKeyV1, Role
from utfall_events.contracts import ContractDefinitionV1, ContractId
from utfall_events.registry import ProviderRegistrationV1, ProviderV1
from utfall_events.topics import API_KEYS, CONTRACT_COMMANDS, PROVIDER_REGISTRY
from utfall_platform.apikeys import generate_key
from utfall_platform.problems import Problem, problem_responses
from utfall_platform.registry import ProviderRegistry

from ..auth import Operator
from ..state import gateway_state

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=problem_responses(400, 401, 403, 404, 422))


class KeyRequest(BaseModel):
    role: Role
    provider_id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9\-]+$", max_length=63)
    municipality_code: str | None = Field(None, pattern=r"^\d{4}$")
    funder: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9\-]+$", max_length=64)
    register_id: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9\-]+$",
        max_length=63,
        description="a register holder's register (register keys only)",
    )
    label: str = Field("", max_length=200)
    contract_ids: list[ContractId] = Field(
        default_factory=list, max_length=100, description="an assessor's contracts (assessor keys only)"
    )


class KeyOut(BaseModel):
    """An API key as operators see it: its scope, never its secret nor its hash."""

    key_id: str
    role: Role
    provider_id: str | None
    municipality_code: str | None
    funder: str | None
    contract_ids: list[str]
    register_id: str | None
    label: str
    created_at: str
    revoked_at: str | None


class KeysOut(BaseModel):
    keys: list[KeyOut]


def _key_out(k: ApiKeyV1) -> KeyOut:
    return KeyOut(
        key_id=k.key_id,
        role=k.role,
        provider_id=k.provider_id,
        municipality_code=k.municipality_code,
        funder=k.funder,
        contract_ids=k.contract_ids,
        register_id=k.register_id,
        label=k.label,
        created_at=k.created_at.isoformat(),
        revoked_at=k.revoked_at.isoformat() if k.revoked_at else None,
    )


def _unregistered(request: Request, provider_ids: list[str], field: str) -> None:
    """422 naming each provider that is not (or no longer) in the registry."""
    registry: ProviderRegistry = request.app.state.providers
    unknown = registry.unknown(provider_ids)
    if unknown:
        raise Problem(
            422,
            "unknown-provider",
            "Register a provider (POST /v1/admin/providers) before naming it.",
            errors=[
                {"field": field, "in": "body", "message": f"{p} is not an active provider in the registry"}
                for p in unknown
            ],
        )


@router.post("/keys", status_code=201, summary="Create an API key; the key is in this response only")
async def create_key(request: Request, who: Operator, body: KeyRequest) -> JSONResponse:
    gw = gateway_state(request)
    if body.provider_id is not None:
        await request.app.state.providers.ensure([body.provider_id])
        _unregistered(request, [body.provider_id], "provider_id")
    try:
        new = generate_key(
            body.role,
            now=gw.clock.now(),
            provider_id=body.provider_id,
            municipality_code=body.municipality_code,
            funder=body.funder,
            label=body.label,
            contract_ids=body.contract_ids,
            register_id=body.register_id,
        )
    except ValueError as exc:
        raise Problem(422, "invalid-parameters", str(exc)) from None
    await gw.publish(API_KEYS, new.record.model_dump_json().encode(), key=new.record.key_id.encode())
    return JSONResponse({**_key_out(new.record).model_dump(), "key": new.secret}, status_code=201)


@router.get("/keys", response_model=KeysOut, summary="Every API key (never the secret nor its hash)")
async def list_keys(request: Request, who: Operator) -> KeysOut:
    keys = request.app.state.keys.keys.values()
    return KeysOut(keys=[_key_out(k) for k in sorted(keys, key=lambda k: k.created_at)])


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke an API key")
async def revoke_key(request: Request, who: Operator, key_id: str) -> KeyOut:
    gw = gateway_state(request)
    key = request.app.state.keys.keys.get(key_id)
    if key is None:
        raise Problem(404, "not-found", "No key with this id.")
    revoked = key.model_copy(update={"revoked_at": gw.clock.now()})
    await gw.publish(API_KEYS, revoked.model_dump_json().encode(), key=key_id.encode())
    return _key_out(revoked)


class ContractAcceptedOut(BaseModel):
    contract_id: str
    status: Literal["accepted"]
    detail: str


class RegistryOut(BaseModel):
    providers: list[ProviderV1]


@router.post(
    "/contracts",
    status_code=202,
    response_model=ContractAcceptedOut,
    summary="Create or amend a contract (a new version is kept)",
)
async def put_contract(request: Request, who: Operator, body: ContractDefinitionV1) -> dict[str, Any]:
    gw = gateway_state(request)
    await request.app.state.providers.ensure(body.provider_ids)
    _unregistered(request, body.provider_ids, "provider_ids")
    await gw.publish(CONTRACT_COMMANDS, body.model_dump_json().encode(), key=body.contract_id.encode())
    return {
        "contract_id": body.contract_id,
        "status": "accepted",
        "detail": "The contracts service stores it as a new version if it differs from the current one.",
    }


@router.post(
    "/providers",
    status_code=201,
    response_model=ProviderV1,
    summary="Register a provider, or change its registration (units, care types)",
)
async def register_provider(request: Request, who: Operator, body: ProviderRegistrationV1) -> ProviderV1:
    gw = gateway_state(request)
    registry: ProviderRegistry = request.app.state.providers
    await registry.ensure([body.provider_id])
    previous = registry.rows.get(body.provider_id)
    record = ProviderV1(
        **body.model_dump(),
        registered_at=previous.registered_at if previous is not None else gw.clock.now(),
    )
    await gw.publish(PROVIDER_REGISTRY, record.model_dump_json().encode(), key=record.provider_id.encode())
    return record


@router.get(
    "/providers", response_model=RegistryOut, summary="Every registered provider, retired ones included"
)
async def list_providers(request: Request, who: Operator) -> RegistryOut:
    registry: ProviderRegistry = request.app.state.providers
    await registry.refresh()
    return RegistryOut(providers=sorted(registry.rows.values(), key=lambda p: p.provider_id))


@router.delete(
    "/providers/{provider_id}",
    response_model=ProviderV1,
    summary="Retire a provider: its keys and events are refused from now on",
)
async def retire_provider(request: Request, who: Operator, provider_id: str) -> ProviderV1:
    gw = gateway_state(request)
    registry: ProviderRegistry = request.app.state.providers
    await registry.ensure([provider_id])
    current = registry.rows.get(provider_id)
    if current is None:
        raise Problem(404, "not-found", "No provider with this id.")
    retired = current.model_copy(update={"retired_at": current.retired_at or gw.clock.now()})
    await gw.publish(PROVIDER_REGISTRY, retired.model_dump_json().encode(), key=provider_id.encode())
    return retired
