"""Route table: the `model` a client sends -> strategy and ordered candidate deployments.

A deployment's own name resolves too, as a one-candidate `direct` route (whether a client
may use it is admission's call). Its residency is the strictest of the routes holding it:
the intersection of their `data_residency` (None when none of them restricts it)."""

from __future__ import annotations

from gateway.config.holding import routes_holding, strictest_residency
from gateway.config.model import Config, DeploymentConfig, DeploymentType, RouteConfig
from gateway.strategy import Strategy
from gateway.value_class import value_class


@value_class
class ResolvedRoute:
    name: str
    strategy: Strategy
    deployments: tuple[DeploymentConfig, ...]
    k: int
    hedge_delay_s: float
    heartbeat_after_s: float | None
    max_extra_load: float | None
    min_extra_per_s: float
    data_residency: tuple[str, ...] | None
    direct: bool  # the client named a deployment, not a route
    resume: bool = False  # continue a cut text answer on a backup (RouteConfig.resume)
    max_resumes: int = 1

    @property
    def type(self) -> DeploymentType:
        """What the route serves: its deployments' type (config keeps one per route)."""
        return self.deployments[0].type if self.deployments else "chat"


class RouteTable:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._routes: dict[str, ResolvedRoute] = {}
        self._holding = routes_holding(config)
        for route in config.routes.values():
            self._routes[route.name] = self._resolve_route(route)
        for dep in config.deployments.values():
            self._routes.setdefault(
                dep.name,
                ResolvedRoute(
                    name=dep.name,
                    strategy="fallback",
                    deployments=(dep,),
                    k=1,
                    hedge_delay_s=0.6,
                    heartbeat_after_s=None,
                    max_extra_load=0.0,
                    min_extra_per_s=0.0,
                    data_residency=strictest_residency(
                        config.routes[r].data_residency for r in self._holding.get(dep.name, ())
                    ),
                    direct=True,
                ),
            )

    def _resolve_route(self, route: RouteConfig) -> ResolvedRoute:
        deployments = tuple(self._config.deployments[name] for name in route.deployments)
        return ResolvedRoute(
            name=route.name,
            strategy=route.strategy,
            deployments=deployments,
            k=route.k,
            hedge_delay_s=route.hedge_delay_ms / 1000.0,
            heartbeat_after_s=route.heartbeat_after_s,
            max_extra_load=route.max_extra_load,
            min_extra_per_s=route.min_extra_per_s,
            data_residency=route.data_residency,
            direct=False,
            resume=route.resume,
            max_resumes=route.max_resumes,
        )

    def get(self, model: str) -> ResolvedRoute | None:
        return self._routes.get(model)

    def holding(self, deployment: str) -> tuple[str, ...]:
        """The routes (by name) that hold `deployment`, in a tier or not."""
        return self._holding.get(deployment, ())

    def names(self) -> list[str]:
        """Every addressable model name: routes first, then deployments."""
        return list(self._routes)

    def routes(self) -> list[ResolvedRoute]:
        return list(self._routes.values())
