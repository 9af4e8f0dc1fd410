"""The automatic actions procedure steps name; importing this package registers them all."""

from energizeos.commissioning.actions import (  # noqa: F401
    common,
    ct_pt,
    export,
    interlocks,
    points,
    reversion,
    settings,
    trip,
)
