"""Which failures are the infrastructure's and which are the message's own.

A consumer retries a *transient* failure (the database or the broker was briefly
unreachable, slow or between primaries) for as long as it lasts and never dead-letters
the event for it; only a failure of the message on its own merits goes to the DLQ. The
outbox relay uses the same rule: a broker outage is retried, a record the broker can
never take marks its document stuck. Services may reuse :func:`is_transient` for their
own retry decisions, and raise :class:`TransientError` to ask for a retry explicitly.
"""

from __future__ import annotations

from aiokafka import errors as kafka_errors
from pymongo import errors as mongo_errors

__all__ = ["TransientError", "is_transient"]


class TransientError(Exception):
    """Raise (or ``raise ... from``) to say: the world, not this message, failed; retry."""


# Server error codes that mean "try again" (network, elections, shutdown, time limits).
_MONGO_TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        24,  # LockTimeout
        50,  # MaxTimeMSExpired
        64,  # WriteConcernFailed
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
_MONGO_TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError", "RetryableError")

_MONGO_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    mongo_errors.ConnectionFailure,  # AutoReconnect, NetworkTimeout, NotPrimaryError,
    # ServerSelectionTimeoutError, WaitQueueTimeoutError
    mongo_errors.ExecutionTimeout,
    mongo_errors.WTimeoutError,
)

# aiokafka marks most retriable errors itself (``retriable = True``); these are not
# marked but are the broker being away or this process shutting its client down.
_KAFKA_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.ProducerClosed,
)

# OSError subclasses that are about a local file, not about reaching a server.
_LOCAL_OS_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def _one(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, _MONGO_TRANSIENT_TYPES + _KAFKA_TRANSIENT_TYPES):
        return True
    if isinstance(exc, mongo_errors.PyMongoError):
        if any(exc.has_error_label(label) for label in _MONGO_TRANSIENT_LABELS):
            return True
        code = getattr(exc, "code", None)
        return isinstance(code, int) and code in _MONGO_TRANSIENT_CODES
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(getattr(exc, "retriable", False))
    if isinstance(exc, ConnectionError | TimeoutError):  # asyncio.TimeoutError is TimeoutError
        return True
    return isinstance(exc, OSError) and not isinstance(exc, _LOCAL_OS_ERRORS)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was explicitly raised ``from``) is an
    infrastructure failure worth retrying without limit: MongoDB connection,
    selection, primary and time-limit errors, Kafka connection/timeout/retriable
    errors, ``asyncio.TimeoutError``, ``ConnectionError`` and network ``OSError``.
    An exception group is transient when all its members are."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, BaseExceptionGroup):
            return bool(cur.exceptions) and all(is_transient(e) for e in cur.exceptions)
        if _one(cur):
            return True
        cur = cur.__cause__
    return False
