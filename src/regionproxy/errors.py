"""The errors regionproxy raises, all under :class:`RegionProxyError`.

Caller errors from DynamoDB (``ConditionalCheckFailedException``,
``ValidationException``, ...) are not wrapped: they reach the caller exactly
as boto3 raises them. Only the situations that exist because there are
several regions get an error of their own.
"""

from __future__ import annotations

from collections.abc import Mapping


class RegionProxyError(Exception):
    """Base class of every error regionproxy raises itself."""


class ConfigError(RegionProxyError, ValueError):
    """A setting is missing or wrong; raised at construction, never later.

    :param setting: the name of the setting (or environment variable) at fault.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class AllRegionsFailed(RegionProxyError):
    """No region could serve the call.

    :param operation: the DynamoDB operation name, e.g. ``"GetItem"``.
    :param errors: the error seen in each region tried, in the order tried;
        a region skipped because its breaker was open maps to the
        :class:`RegionUnavailable` that says so.

    A web app answers it with ``503 Service Unavailable`` and
    ``Retry-After`` (docs/getting-started/flask.md shows the handler).
    """

    def __init__(self, operation: str, errors: Mapping[str, BaseException]) -> None:
        self.operation = operation
        self.errors = dict(errors)
        detail = "; ".join(f"{region}: {_describe(err)}" for region, err in self.errors.items())
        super().__init__(f"{operation} failed in every region ({detail or 'no region configured'})")


class RegionUnavailable(RegionProxyError):
    """A region was not tried because its breaker is open or it is evacuated.

    :param region: the region skipped.
    :param state: the breaker state that kept the call out.
    """

    def __init__(self, region: str, state: str) -> None:
        self.region = region
        self.state = state
        super().__init__(f"region {region} not tried: breaker {state}")


class ReplicaMissingError(RegionProxyError):
    """A region answered that a table does not exist there, while the call
    had come to it from another region: the Global Table has no replica in
    ``region``. A configuration problem, reported in :class:`AllRegionsFailed`.

    :param region: the region without the replica.
    :param tables: the tables the call named.
    :param error: DynamoDB's ``ResourceNotFoundException``; also the ``__cause__``.
    """

    def __init__(self, region: str, tables: list[str], error: BaseException) -> None:
        self.region = region
        self.tables = list(tables)
        self.error = error
        self.__cause__ = error
        super().__init__(
            f"no replica of {', '.join(self.tables)} in {region} (ResourceNotFoundException): "
            "add a replica there, or remove the region from this session"
        )


class AmbiguousWriteError(RegionProxyError):
    """A write that is not safe to repeat may or may not have been applied.

    The request may have reached DynamoDB in ``region`` (a read timeout, a
    connection dropped after sending), so repeating it on another region
    could apply it twice. The caller decides: read the item back, or retry.

    :param region: where the write was sent.
    :param operation: the DynamoDB operation name.
    :param error: the original error; also the ``__cause__``.

    Example::

        try:
            table.update_item(Key=key, UpdateExpression="ADD views :one", ExpressionAttributeValues={":one": 1})
        except rp.AmbiguousWriteError:
            current = table.get_item(Key=key, ConsistentRead=True).get("Item")   # applied or not?
    """

    def __init__(self, region: str, operation: str, error: BaseException) -> None:
        self.region = region
        self.operation = operation
        self.error = error
        super().__init__(
            f"{operation} outcome unknown in {region} ({_describe(error)}); "
            "not repeated elsewhere because it is not idempotent"
        )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
