"""EnergizeOS: an energy-management system for C&I battery microgrids, as a ROS 2-style node graph."""

__version__ = "0.1.0"
