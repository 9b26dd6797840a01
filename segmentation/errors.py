"""Project exceptions. Their messages are for people: they name the table, column, rule and count."""


class SegmentationError(Exception):
    """Base of every error the CLI reports in one line and exits non-zero on."""


class ConfigError(SegmentationError):
    """A config file, key or value is wrong."""


class InputError(SegmentationError):
    """Input data breaks the contract: a missing column, unparseable values, too many rejects."""


class PeriodNotCovered(InputError):
    """Bronze does not reach the end of a next period yet (`segment evaluate`); the report says
    from when the assignment can be evaluated instead of failing."""

    def __init__(self, message: str, *, last_date: object, period_end: object) -> None:
        super().__init__(message)
        self.last_date = last_date
        self.period_end = period_end


class SchemaError(SegmentationError):
    """A frame does not match the schema of the table it is written to (`segmentation.tables`)."""


class ConflictError(SegmentationError):
    """Concurrent runs kept committing to the same table first; re-running is safe."""


class StoreError(SegmentationError):
    """The MLflow tracking or registry store cannot be reached or written."""
