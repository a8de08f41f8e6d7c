"""Types of the query keywords of ``get``, and ``to_frame``: a columnar
result (``get_columns``) as a pandas DataFrame.

numpy and pandas are optional (``pip install 'metrics-client[numpy]'``,
pandas on its own); they are imported only when used.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Dict, Mapping, Tuple, Union

__all__ = ["Instant", "Step", "Columns", "to_frame"]

#: ``since``/``until``: epoch seconds, a datetime (naive: local time), or a
#: timedelta meaning that long before now.
Instant = Union[int, datetime.datetime, datetime.timedelta]
#: ``step``: seconds, or a timedelta of whole seconds.
Step = Union[int, datetime.timedelta]

if TYPE_CHECKING:
    import numpy
    import numpy.typing
    import pandas

    #: ``get_columns``: per key, int64 timestamps and float64 values.
    Columns = Dict[str, Tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]]
else:
    Columns = Dict[str, Tuple[Any, Any]]


def to_frame(columns: Mapping[str, Tuple[Any, Any]]) -> "pandas.DataFrame":
    """``get_columns``'s result as one pandas DataFrame: indexed by
    timestamp (int64 epoch seconds, named ``timestamp``, sorted), one
    float64 column per key in the result's order, NaN where a key has no
    point at a timestamp. Equal timestamps within a key (possible only from
    servers that keep them) each get their own row."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError("to_frame needs pandas: pip install pandas") from error
    series = [
        pandas.Series(values, index=pandas.Index(timestamps, name="timestamp"), name=key, copy=False)
        for key, (timestamps, values) in columns.items()
    ]
    if not series:
        return pandas.DataFrame(index=pandas.Index([], dtype="int64", name="timestamp"))
    if any(not s.index.is_unique for s in series):
        frame = pandas.concat(series, axis=1, sort=True)
    else:
        frame = pandas.concat(series, axis=1, join="outer", sort=True)
    frame.index.name = "timestamp"
    return frame
