"""EnergizeOS interface package (ROS 2 style: ``energizeos_msgs``).

The ``.msg`` and ``.srv`` files in ``msg/`` and ``srv/`` are the source of truth.
``msg/__init__.py`` and ``srv/__init__.py`` are generated from them by
``energizeos msgs generate`` (a test fails when they are out of date).

    from energizeos_msgs.msg import MeterReading
    from energizeos_msgs.srv import BreakerRequest
"""

from energizeos_msgs._message import Message, MessageDecodeError, MessageEncodeError
from energizeos_msgs._typestore import (
    deserialize,
    interface_names,
    message_class,
    serialize,
    type_hash,
    typestore,
)

__all__ = [
    "Message",
    "MessageDecodeError",
    "MessageEncodeError",
    "deserialize",
    "interface_names",
    "message_class",
    "serialize",
    "type_hash",
    "typestore",
]
