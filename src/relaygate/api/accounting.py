"""Per-request bookkeeping shared by the data-plane endpoints: routes and usage records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request

from relaygate.api import checks
from relaygate.api.authn import authenticate
from relaygate.api.body import parse_json, read_body
from relaygate.api.disconnect import ClientDisconnected, unless_disconnected
from relaygate.api.responses import AnswerThen
from relaygate.config.schema import Capability
from relaygate.errors import GatewayError, UpstreamError, bad_request, model_not_found
from relaygate.jobs.inprocess import REPORT_STATE
from relaygate.policy import enforce
from relaygate.policy.enforce import Admission, allowed_models
from relaygate.policy.principal import Principal
from relaygate.providers.base import JSON
from relaygate.routing.catalog import Deployment, Route
from relaygate.routing.router import Attempted
from relaygate.routing.scorer import Features, Plan
from relaygate.routing.stats import bucket_of
from relaygate.state import Gateway, gateway
from relaygate.usage.cost import Usage
from relaygate.usage.meter import UsageMeter, price
from relaygate.usage.recorder import UsageEvent


async def admit(request: Request) -> tuple[Gateway, Principal, JSON]:
    """The first steps of every data-plane POST: read the body, authenticate, parse it.

    The raw body is read first because a signed request's signature covers its exact bytes.
    """
    gw = gateway(request)
    server = gw.config.server
    raw = await read_body(request, server.max_body_bytes, server.body_timeout_s)
    principal = await authenticate(request, gw, raw)
    key = principal.key
    body = parse_json(raw, key.max_body_bytes if key is not None else None)
    checks.depth_of(raw, body, gw.config.bounds.max_depth)
    return gw, principal, body


def resolve(
    gw: Gateway, principal: Principal, model: str, needs: frozenset[Capability]
) -> tuple[Route, Sequence[Deployment]]:
    """The route named `model` and its deployments able to serve `needs`; 404 or 400 otherwise.

    A model outside the caller's allowlist is the same 404 as an unknown one. The answer
    depends only on the policy snapshot and the catalog, so it is kept in the snapshot's memo
    (a refusal is not kept).
    """
    snapshot = gw.policy
    key = principal.key
    if key is not None and snapshot.keys_by_id.get(key.key_id) is not key:
        # The principal's key came from another snapshot (a reload during a signature check, a
        # job started before it): its allowlist is not this snapshot's to remember.
        return _resolve(gw, principal, model, needs)
    return snapshot.routes.get(
        (principal.tenant_id, principal.key_id, model, needs),
        lambda: _resolve(gw, principal, model, needs),
    )


def _resolve(
    gw: Gateway, principal: Principal, model: str, needs: frozenset[Capability]
) -> tuple[Route, tuple[Deployment, ...]]:
    route = gw.catalog.resolve(model)
    allowed = allowed_models(gw.policy.tenant(principal.tenant_id), principal.key)
    if route is None or (allowed is not None and model not in allowed):
        raise model_not_found(model)
    if route.classify is not None:
        return route, ()  # the handler classifies the prompt, then resolves the chosen route
    deployments = route.supporting(needs)
    if not deployments:
        missing = sorted(needs - route.capabilities) or sorted(needs)
        raise bad_request(
            f"model '{model}' does not support: {', '.join(missing)}",
            param="model",
            code="unsupported_capability",
        )
    return route, deployments


@dataclass(slots=True)
class RequestLedger:
    """Everything needed to write the usage record once the request ends."""

    gw: Gateway
    request_id: str
    principal: Principal
    endpoint: str
    route: str
    end_user: str | None
    stream: bool
    meter: UsageMeter
    admission: Admission = field(default_factory=Admission)
    attempted: Attempted | None = None
    finished: bool = field(default=False)
    plan: Plan | None = None
    deadline: float = 0.0
    complexity: str | None = None
    report: dict[str, object] | None = None

    @classmethod
    def start(
        cls,
        request: Request,
        gw: Gateway,
        principal: Principal,
        *,
        endpoint: str,
        route: str,
        end_user: str | None,
        stream: bool,
    ) -> RequestLedger:
        """The ledger of `request`, its clock started now."""
        return cls(
            gw=gw,
            request_id=request.scope["state"]["request_id"],
            principal=principal,
            endpoint=endpoint,
            route=route,
            end_user=gw.end_user_id(principal.end_user or end_user),
            stream=stream,
            meter=UsageMeter(gw.counter),
            deadline=gw.router.clock() + _time_allowed(request, gw.config.routing.deadline_s),
            report=request.scope["state"].get(REPORT_STATE),
        )

    def route_plan(
        self,
        route: Route,
        deployments: Sequence[Deployment],
        max_output_tokens: int | None,
        count_prompt: Callable[[], int],
        size_hint: int,
        cost_cap_usd: float | None,
    ) -> None:
        """Filter and score the deployments for this request (see routing/scorer.py).

        The prompt is counted exactly when the choice depends on it (several candidates, or a
        context window it may not fit); otherwise `size_hint` (characters / 4) stands in.
        """
        smallest = min((d.model.context_window for d in deployments), default=0)
        near_window = size_hint * 2 + (max_output_tokens or 0) > smallest * 0.9
        prompt = count_prompt() if len(deployments) > 1 or near_window else size_hint
        features = Features(
            prompt,
            max_output_tokens,
            bucket_of(prompt),
            cost_cap_usd,
            price_scale=self.admission.price_scale,
        )
        try:
            self.plan = self.gw.router.plan(route.name, deployments, features, route.latency_slo_ms)
        except UpstreamError as exc:
            self.finish(Usage(), exc.status, "refused")
            exc.headers.update(self.headers())
            raise

    async def enforce(
        self,
        principal: Principal,
        route: Route,
        deployments: Sequence[Deployment],
        needs: frozenset[Capability],
        max_output_tokens: int | None,
        count_prompt: Callable[[], int],
    ) -> Sequence[Deployment]:
        """Apply limits and budgets; returns the deployments to call (maybe a cheaper route's)."""

        def resolve_downgrade(name: str) -> tuple[Route, Sequence[Deployment]] | None:
            try:
                return resolve(self.gw, principal, name, needs)
            except Exception:
                return None

        try:
            route, deployments, self.admission = await enforce.admit(
                self.gw,
                principal,
                route=route,
                deployments=deployments,
                end_user=self.end_user,
                max_output_tokens=max_output_tokens,
                count_prompt=count_prompt,
                resolve=resolve_downgrade,
            )
        except GatewayError as exc:
            self.finish(Usage(), exc.status, "refused")
            raise
        self.route = route.name
        return deployments

    def headers(self) -> dict[str, str]:
        """The routing decision and rate-limit state, visible on every answer."""
        headers = {"x-relaygate-route": self.route, **self.admission.headers}
        if self.admission.downgraded_from is not None:
            headers["x-relaygate-downgraded-from"] = self.admission.downgraded_from
        if self.attempted is not None:
            headers["x-relaygate-provider"] = self.attempted.deployment.provider_name
            headers["x-relaygate-model"] = self.attempted.deployment.model.name
            headers["x-relaygate-attempts"] = str(self.attempted.attempts)
        if self.complexity is not None:
            headers["x-relaygate-complexity"] = self.complexity
        if self.plan is not None and self.gw.config.routing.debug_header:
            debug = self.plan.describe()
            scale = self.plan.features.price_scale
            if scale != 1.0:  # a paced budget weighed price more (above 1) or less
                debug = f"pace={scale:.3g}; {debug}"
            headers["x-relaygate-route-debug"] = debug
        return headers

    def answer(self, result: JSON) -> AnswerThen:
        """The 200 answer carrying `result`; its usage is recorded once the answer is sent,
        so the client does not wait for the record (the journal write)."""
        usage = Usage.from_openai(result["usage"])
        return AnswerThen(result, self.headers(), lambda: self.finish(usage, 200, "ok"))

    def finish(self, usage: Usage, status: int, outcome: str) -> float:
        """Write the usage record (once); returns the cost in USD."""
        if self.finished:
            return 0.0
        self.finished = True
        deployment = self.attempted.deployment if self.attempted else None
        cost = price(deployment.model if deployment else None, usage)
        self.gw.usage.record(
            UsageEvent(
                request_id=self.request_id,
                tenant_id=self.principal.tenant_id,
                environment=self.principal.environment,
                key_id=self.principal.key_id,
                endpoint=self.endpoint,
                route=self.route,
                status=status,
                outcome=outcome,
                provider=deployment.provider_name if deployment else None,
                model=deployment.model.name if deployment else None,
                end_user=self.end_user,
                stream=self.stream,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cost_usd=cost,
                latency_ms=self.meter.elapsed_ms(),
            )
        )
        if self.report is not None:  # a background job reads what its request cost
            self.report.update(
                cost_usd=cost,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                provider_ms=self.meter.elapsed_ms(),
            )
        if self.admission.lease is not None or self.admission.reservation is not None:
            self.gw.background.spawn(
                enforce.settle(self.gw, self.admission, usage, cost), name="settle"
            )
        return cost


CLIENT_CLOSED = 499


async def call_routed(
    request: Request,
    ledger: RequestLedger,
    call: Callable[[Deployment, float], Awaitable[JSON]],
    usage_if_cancelled: Callable[[], Usage],
) -> JSON | None:
    """Run `call` through the router (retries, failover), cancelled if the client leaves (then
    None, usage recorded). An upstream failure is recorded and re-raised with routing headers.
    `call(deployment, timeout_s)` must end within `timeout_s` (`Router.run_bounded`).
    """
    assert ledger.plan is not None
    try:
        result, ledger.attempted = await unless_disconnected(
            request.scope,
            request.receive,
            ledger.gw.router.run_bounded(ledger.plan, call, ledger.deadline, ledger.request_id),
        )
    except ClientDisconnected:
        ledger.finish(usage_if_cancelled(), CLIENT_CLOSED, "cancelled")
        return None
    except GatewayError as exc:
        # An upstream failure, or a request a provider refused to translate (a 400).
        outcome = "upstream_error" if isinstance(exc, UpstreamError) else "refused"
        ledger.finish(Usage(), exc.status, outcome)
        exc.headers.update(ledger.headers())
        raise
    return result


CLIENT_TIMEOUT_HEADERS = (("x-relaygate-timeout-ms", 0.001), ("x-stainless-timeout", 1.0))


def _time_allowed(request: Request, cap_s: float) -> float:
    """Seconds this request may take: the routing deadline, or less if the client says so
    (`x-relaygate-timeout-ms`, or `x-stainless-timeout` in seconds as the OpenAI SDKs send)."""
    allowed = cap_s
    for header, unit in CLIENT_TIMEOUT_HEADERS:
        value = request.headers.get(header)
        if value:
            try:
                seconds = float(value) * unit
            except ValueError:
                continue
            if seconds > 0:
                allowed = min(allowed, seconds)
    return allowed


def cost_cap(request: Request) -> float | None:
    """The request's `x-relaygate-max-cost-usd`, if any (400 if it is not a positive number)."""
    value = request.headers.get("x-relaygate-max-cost-usd")
    if value is None:
        return None
    try:
        cap = float(value)
    except ValueError:
        cap = -1.0
    if not cap > 0:
        raise bad_request(
            "x-relaygate-max-cost-usd must be a positive number of US dollars",
            param="x-relaygate-max-cost-usd",
            code="invalid_value",
        )
    return cap
