"""Deployment shapes (profiles) and the pool defaults each one picks."""

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Profile(StrEnum):
    """A deployment shape; it picks the pool defaults."""

    DEV = "dev"
    PROD = "prod"
    HIGH_TRAFFIC = "high-traffic"


class BudgetCheck(StrEnum):
    """What to do when the pools of all workers could exceed the server's connections."""

    WARN = "warn"
    FAIL = "fail"
    OFF = "off"


class Pooler(StrEnum):
    """What stands between the service and PostgreSQL."""

    NONE = "none"
    PGBOUNCER = "pgbouncer"


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How the engine's connection pool is sized and maintained."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_recycle: int
    pool_pre_ping: bool
    echo: bool
    # Server-side limits on how long one connection may be kept busy (0: none).
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int

    @property
    def capacity(self) -> int:
        """The most connections the pool holds at once: pool_size + max_overflow."""
        return self.pool_size + self.max_overflow


POOL_PROFILES: Final = MappingProxyType(
    {
        Profile.DEV: PoolSettings(
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            pool_recycle=3600,
            pool_pre_ping=True,
            echo=True,
            statement_timeout_ms=60_000,
            idle_in_transaction_timeout_ms=120_000,
        ),
        Profile.PROD: PoolSettings(
            pool_size=20,
            max_overflow=40,
            pool_timeout=30,
            pool_recycle=3600,
            pool_pre_ping=True,
            echo=False,
            statement_timeout_ms=15_000,
            idle_in_transaction_timeout_ms=30_000,
        ),
        Profile.HIGH_TRAFFIC: PoolSettings(
            pool_size=50,
            max_overflow=100,
            pool_timeout=10,
            pool_recycle=1800,
            pool_pre_ping=True,
            echo=False,
            statement_timeout_ms=5_000,
            idle_in_transaction_timeout_ms=10_000,
        ),
    }
)
